#!/usr/bin/env node
// The server is TypeScript run through tsx, so the source in gpu-backend/src is what runs (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exit(await main(process.argv.slice(2)));
