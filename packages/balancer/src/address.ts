import type net from 'node:net';

/** `host:port`, an IPv6 address in brackets: as URLs, nginx, HAProxy and Apache all write it. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** `scheme://host:port` of a listening server. */
export function serverUrl(server: net.Server, scheme = 'http'): string {
  const a = server.address() as net.AddressInfo;
  return `${scheme}://${hostPort(a.address, a.port)}`;
}
