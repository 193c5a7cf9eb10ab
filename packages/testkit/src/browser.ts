import { which } from './binaries.ts';

/**
 * Launch options for Debian's Chromium driven by playwright-core (which never downloads a browser of its own).
 * The background-networking flags matter: without them Chromium keeps dialling Google's hosts, which this
 * sandbox refuses. CHROMIUM_PATH overrides the binary.
 */
export function chromiumOptions() {
  return {
    executablePath: process.env.CHROMIUM_PATH ?? which('chromium') ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  };
}
