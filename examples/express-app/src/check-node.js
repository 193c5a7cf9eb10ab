// Loaded first by `npm start` (node --import ./src/check-node.js src/start.ts): plain JavaScript, so it runs on
// any Node. On an older Node, start.ts would die before any of its code runs (ERR_UNKNOWN_FILE_EXTENSION ".ts").
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `This starter needs Node.js 22.18 or newer (24 LTS recommended), found ${process.version}. ` +
      'Get Node 24: `nvm install` (reads .nvmrc), or https://nodejs.org/en/download\n',
  );
  process.exit(1);
}
