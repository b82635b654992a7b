// Node ESM resolve hook: tfjs-core's ESM build (dist/*.js) imports its own files without extensions,
// which only bundlers accept. Its side-effect modules (gradients, chained ops) exist only there.
export async function resolve(specifier, context, next) {
  const inTfjs = context.parentURL?.includes('/@tensorflow/tfjs-core/dist/');
  if (inTfjs && specifier.startsWith('.') && !/\.[cm]?js$/.test(specifier)) {
    try {
      return await next(`${specifier}.js`, context);
    } catch {
      return next(`${specifier}/index.js`, context);
    }
  }
  return next(specifier, context);
}
