#!/usr/bin/env node
// kubectl_complete-slipway: kubectl (1.26+) runs this, found on PATH, to complete `kubectl slipway <TAB>`.
import { complete } from "./complete.js";

const text = await complete(process.argv.slice(2));
process.stdout.write(text, () => process.exit(0));
