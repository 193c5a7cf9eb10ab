export { hash32 } from './hash.ts';
export { pick, rank, score, type RendezvousNode } from './rendezvous.ts';
