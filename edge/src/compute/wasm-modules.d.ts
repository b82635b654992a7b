// .wasm imports arrive compiled (wrangler.toml [[rules]] CompiledWasm): workerd forbids compiling at run time.
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
