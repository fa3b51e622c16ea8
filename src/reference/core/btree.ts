/**
 * The B+ tree of `sorted-btree`, re-exported for ESM (the package is CommonJS with a `default` export) and keyed by
 * `bigint`. Every interval structure of the models sits on it: O(log n) lookups and cheap copy-on-write clones.
 *
 * @module
 */
import * as BTreeModule from 'sorted-btree';

type BTreeClass = typeof BTreeModule.default.default;
/** The BTree class (the CommonJS module's `default`, however the loader wraps it). */
export const BTree: BTreeClass =
  (BTreeModule.default as unknown as { default?: BTreeClass }).default ??
  (BTreeModule.default as unknown as BTreeClass);
/** A BTree instance. */
export type BTree<K, V> = import('sorted-btree').default<K, V>;

/** Total order on bigints. */
export function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A new empty tree keyed by bigint. */
export function bigintTree<V>(): BTree<bigint, V> {
  return new BTree<bigint, V>(undefined, compareBigint);
}
