#!/usr/bin/env node
'use strict';
/**
 * Writes the coverage reports from an istanbul coverage map (coverage-final.json) with istanbul's own
 * reporters: lcov.info (paths relative to the working directory, the project), an HTML site (index.html)
 * and coverage-summary.json.
 *
 *   node coverage_report.js COVERAGE_FINAL_JSON REPORT_DIR
 */
const fs = require('fs');
const path = require('path');
const libCoverage = require('istanbul-lib-coverage');
const libReport = require('istanbul-lib-report');
const reports = require('istanbul-reports');

function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write('usage: coverage_report.js COVERAGE_FINAL_JSON REPORT_DIR\n');
    return 2;
  }
  const [input, dir] = argv;
  const coverageMap = libCoverage.createCoverageMap(JSON.parse(fs.readFileSync(input, 'utf8')));
  const context = libReport.createContext({
    dir: path.resolve(dir),
    coverageMap,
    // Paths in lcov.info and the HTML tree are relative to the project.
    sourceFinder: (file) => fs.readFileSync(file, 'utf8'),
    defaultSummarizer: 'flat',
  });
  reports.create('lcovonly', { file: 'lcov.info', projectRoot: process.cwd() }).execute(context);
  reports.create('html', { subdir: '' }).execute(context);
  reports.create('json-summary', { file: 'coverage-summary.json' }).execute(context);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
