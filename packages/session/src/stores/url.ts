/**
 * A store URL safe to show in a message, a banner or `sessions.config`: the password of its user info (or all of
 * it, when there is no user name: ioredis reads a lone name as a password) and a `sentinelPassword` parameter
 * replaced by `***`. Works on multi-host URLs (Sentinel, Cluster, replica sets), which `new URL()` cannot parse.
 */
export function redactUrl(url: string): string {
  return url
    .replace(/^([^:/?#]+:\/\/)([^/?#]*)@/, (_m, scheme: string, info: string) => `${scheme}${info.includes(':') ? `${info.slice(0, info.indexOf(':'))}:***` : '***'}@`)
    .replace(/([?&]sentinelPassword=)[^&#]*/, '$1***');
}
