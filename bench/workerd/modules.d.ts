// Module types the bench workers import, as workerd provides them (CompiledWasm and Data modules).
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
declare module '*.safetensors' {
  const bytes: ArrayBuffer;
  export default bytes;
}
