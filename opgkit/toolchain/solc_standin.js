#!/usr/bin/env node
'use strict';
/**
 * Offline stand-in for the native `solc` command line, backed by npm `solc` (solcjs).
 *
 * It implements the subset that py-solc-x and slither call:
 *   solc --version
 *   solc --standard-json [--base-path DIR] [--include-path DIR]... [--allow-paths A,B] [input.json]
 *
 * Imports are read from disk the way native solc's file loader does: relative to the base path
 * (or the working directory when none is given), then each include path, and only inside the
 * allowed directories. The compiler's output JSON, errors included, is passed through unchanged.
 */
const fs = require('fs');
const path = require('path');

const EXIT_OK = 0;
const EXIT_FAILURE = 1;

class CommandLineError extends Error {}

function parseArguments(argv) {
  const options = { version: false, standardJson: false, basePath: '', includePaths: [], allowPaths: [], inputFile: null };
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    const eq = argument.startsWith('--') ? argument.indexOf('=') : -1;
    const flag = eq === -1 ? argument : argument.slice(0, eq);
    const takeValue = () => {
      if (eq !== -1) return argument.slice(eq + 1);
      if (i + 1 >= argv.length) throw new CommandLineError(`option '${flag}' requires a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--version': options.version = true; break;
      case '--standard-json': options.standardJson = true; break;
      case '--base-path': options.basePath = takeValue(); break;
      case '--include-path': options.includePaths.push(takeValue()); break;
      case '--allow-paths': options.allowPaths.push(...takeValue().split(',').filter(Boolean)); break;
      default:
        if (flag.startsWith('-') || options.inputFile !== null) {
          throw new CommandLineError(`unrecognised option '${argument}' (this stand-in supports --version and --standard-json)`);
        }
        options.inputFile = argument;
    }
  }
  if (!options.version && !options.standardJson) {
    throw new CommandLineError('nothing to do: pass --version or --standard-json');
  }
  return options;
}

function isInside(directory, file) {
  const relative = path.relative(directory, file);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

function makeImportReader(options) {
  const cwd = process.cwd();
  const basePath = path.resolve(cwd, options.basePath);
  const includePaths = options.includePaths.map((p) => path.resolve(cwd, p));
  const allowed = [basePath, ...includePaths, ...options.allowPaths.map((p) => path.resolve(cwd, p))];
  if (options.inputFile !== null) allowed.push(path.dirname(path.resolve(cwd, options.inputFile)));

  return function readImport(sourceUnitName) {
    const candidates = path.isAbsolute(sourceUnitName)
      ? [sourceUnitName]
      : [basePath, ...includePaths].map((root) => path.join(root, sourceUnitName));
    for (const candidate of candidates) {
      if (!fs.existsSync(candidate) || !fs.statSync(candidate).isFile()) continue;
      const real = fs.realpathSync(candidate);
      if (!allowed.some((dir) => isInside(dir, candidate) || isInside(dir, real))) {
        return { error: `File outside of allowed directories: ${candidate}` };
      }
      return { contents: fs.readFileSync(candidate, 'utf8') };
    }
    return { error: `File not found. Searched the following locations: ${candidates.map((c) => `"${c}"`).join(', ')}.` };
  };
}

function readInput(options) {
  if (options.inputFile === null) return fs.readFileSync(0, 'utf8');
  try {
    return fs.readFileSync(options.inputFile, 'utf8');
  } catch (error) {
    throw new CommandLineError(`cannot read input file '${options.inputFile}': ${error.message}`);
  }
}

function main(argv) {
  const options = parseArguments(argv);
  const solc = require(process.env.OPG_SOLCJS_MODULE || 'solc');
  if (options.version) {
    return `solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`;
  }
  return `${solc.compile(readInput(options), { import: makeImportReader(options) })}\n`;
}

try {
  // Writing without process.exit() lets node drain the whole pipe: large outputs stay intact.
  process.stdout.write(main(process.argv.slice(2)));
  process.exitCode = EXIT_OK;
} catch (error) {
  process.stderr.write(`${error instanceof CommandLineError ? '' : 'Internal error: '}${error.message}\n`);
  process.exitCode = EXIT_FAILURE;
}
