/**
 * The exports of a dynamically imported package, whether it is an ES module or CommonJS.
 *
 * NOTE: in the split esbuild bundle (scripts/bundle.ts) a CommonJS package imported with
 * `await import()` arrives as a namespace whose only export is `default` (the module.exports
 * object); run unbundled by Node, its named exports are on the namespace itself. Providers load
 * their SDKs lazily, so they go through this to work both ways.
 */
export function moduleExports<T extends object>(namespace: T | { default: T }): T {
  const ns = namespace as T & { default?: T };
  return ns.default !== undefined && typeof ns.default === 'object' && !hasOwnNamed(ns) ? ns.default : ns;
}

function hasOwnNamed(ns: object): boolean {
  return Object.keys(ns).some((k) => k !== 'default' && k !== '__esModule');
}
