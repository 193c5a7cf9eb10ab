export { default } from '../balancer.ts';
