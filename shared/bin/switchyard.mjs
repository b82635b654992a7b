#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so the source in shared/cli is what runs (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
