#!/usr/bin/env node
'use strict';
/**
 * A long-lived solcjs: reads one standard-json input per line on stdin, writes the compiler's output for it
 * as one line on stdout. Loading solcjs costs about a second; mutation testing compiles thousands of inputs.
 *
 * Imports are read from the working directory (the project root), and only from inside it.
 */
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const solc = require(process.env.OPG_SOLCJS_MODULE || 'solc');
const root = process.cwd();

function readImport(sourceUnitName) {
  const file = path.resolve(root, sourceUnitName);
  const relative = path.relative(root, file);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return { error: `outside the project: ${sourceUnitName}` };
  if (!fs.existsSync(file)) return { error: `File not found: ${sourceUnitName}` };
  return { contents: fs.readFileSync(file, 'utf8') };
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (!line.trim()) return;
  process.stdout.write(`${solc.compile(line, { import: readImport })}\n`);
});
