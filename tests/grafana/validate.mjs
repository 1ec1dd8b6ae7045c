#!/usr/bin/env node
// Validates Grafana dashboards against JSON Schemas generated from the TypeScript types of the
// @grafana/schema npm package (pinned in package-lock.json):
//
//   * the whole dashboard against the `Dashboard` type that @grafana/schema exports
//     (dist/types/veneer/dashboard.types.d.ts, which refines raw/dashboard/x/types.gen.d.ts);
//   * each panel's `options` against the panel plugin's `Options` type and
//     `fieldConfig.defaults.custom` against its `FieldConfig` type
//     (dist/types/raw/composable/<panel type>/panelcfg/x/types.gen.d.ts);
//   * a few things no schema says: unique panel ids, panels inside the 24-column grid and not
//     overlapping, unique refIds per panel.
//
// `__inputs` and `__requires` (only present in "export for sharing externally" files, not part of
// the dashboard model) are stripped before validating.
//
// Usage (from anywhere):  node tests/grafana/validate.mjs [dashboard.json ...]
// Without arguments it validates every grafana/dashboards/*.json of this repository.
// Exit status: 0 valid, 1 invalid (errors on stderr), 2 could not run (e.g. `npm ci` not done).

import { readFileSync, readdirSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");

function fatal(msg) {
  console.error(`validate.mjs: ${msg}`);
  process.exit(2);
}

if (!existsSync(path.join(here, "node_modules"))) {
  fatal(`${path.join(here, "node_modules")} is missing: run \`npm ci\` in tests/grafana first`);
}

const require = createRequire(import.meta.url);
const { createGenerator } = require("ts-json-schema-generator");
const Ajv = require("ajv");

const schemaPkgDir = path.dirname(require.resolve("@grafana/schema/package.json"));
const schemaPkgVersion = JSON.parse(readFileSync(path.join(schemaPkgDir, "package.json"), "utf8")).version;
const typesDir = path.join(schemaPkgDir, "dist", "types");

// ---------------------------------------------------------------------------------------------
// Schema generation

const generators = new Map();
function generatorFor(file) {
  if (!generators.has(file)) {
    generators.set(
      file,
      createGenerator({
        path: file,
        skipTypeCheck: true,
        // "none" inlines referenced types. The veneer Dashboard type pulls in two different
        // interfaces both named DataSourceRef (common + raw), which "export" rejects as duplicates.
        expose: "none",
        topRef: true,
        jsDoc: "basic",
        additionalProperties: false,
      }),
    );
  }
  return generators.get(file);
}

function generate(file, type) {
  try {
    return generatorFor(file).createSchema(type);
  } catch (e) {
    fatal(`cannot generate a schema for ${type} from ${path.relative(repoRoot, file)}: ${e.message}`);
  }
}

function resolveRoot(schema) {
  const m = /^#\/definitions\/(.+)$/.exec(schema.$ref ?? "");
  return m ? schema.definitions?.[decodeURIComponent(m[1])] : schema;
}

// Dashboard.panels is `Array<Panel | RowPanel>`; an anyOf makes ajv report every mismatch of both
// branches. Dispatch on `type` instead so errors talk about the branch that applies.
function dispatchPanelUnion(schema) {
  const dash = resolveRoot(schema);
  const items = dash?.properties?.panels?.items;
  if (!items?.anyOf || items.anyOf.length !== 2) {
    fatal("unexpected shape of Dashboard.panels in the generated schema (expected anyOf [Panel, RowPanel])");
  }
  const isRow = (s) => s.properties?.type?.const === "row";
  const row = items.anyOf.find(isRow);
  const panel = items.anyOf.find((s) => !isRow(s));
  if (!row || !panel) fatal("could not tell Panel from RowPanel in the generated schema");
  dash.properties.panels.items = {
    if: { type: "object", properties: { type: { const: "row" } }, required: ["type"] },
    then: row,
    else: panel,
  };
  return schema;
}

const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true });

const dashboardValidate = ajv.compile(
  dispatchPanelUnion(generate(path.join(typesDir, "veneer", "dashboard.types.d.ts"), "Dashboard")),
);

const panelcfgDir = path.join(typesDir, "raw", "composable");
const panelValidators = new Map(); // panel type -> { options, custom } | null
function panelValidatorsFor(type) {
  if (!panelValidators.has(type)) {
    const file = path.join(panelcfgDir, type, "panelcfg", "x", "types.gen.d.ts");
    if (!existsSync(file)) {
      panelValidators.set(type, null);
    } else {
      const src = readFileSync(file, "utf8");
      const has = (name) => new RegExp(`^export interface ${name}\\b`, "m").test(src);
      panelValidators.set(type, {
        options: has("Options") ? ajv.compile(generate(file, "Options")) : null,
        custom: has("FieldConfig") ? ajv.compile(generate(file, "FieldConfig")) : null,
      });
    }
  }
  return panelValidators.get(type);
}

// ---------------------------------------------------------------------------------------------
// Reporting

function show(value) {
  const s = JSON.stringify(value);
  if (s === undefined) return "undefined";
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
}

function describeAjvError(e, root) {
  let where = e.instancePath || "/";
  let msg = e.message;
  if (e.keyword === "additionalProperties") msg = `unknown property "${e.params.additionalProperty}"`;
  else if (e.keyword === "enum") msg = `must be one of ${show(e.params.allowedValues)}`;
  else if (e.keyword === "const") msg = `must be ${show(e.params.allowedValue)}`;
  else if (e.keyword === "if") return null; // the then/else branch errors say what is wrong
  let value = root;
  for (const part of (e.instancePath || "").split("/").slice(1)) {
    value = value?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  const shown = e.keyword === "required" || e.keyword === "additionalProperties" ? "" : ` (got ${show(value)})`;
  return `${where}: ${msg}${shown}`;
}

function panelLabel(p) {
  return `panel id=${p?.id ?? "?"} "${p?.title ?? ""}" (${p?.type ?? "no type"})`;
}

// ---------------------------------------------------------------------------------------------
// Checks

function allPanels(dash) {
  const out = [];
  (dash.panels ?? []).forEach((p, i) => {
    out.push({ p, at: `/panels/${i}` });
    (p?.panels ?? []).forEach((q, j) => out.push({ p: q, at: `/panels/${i}/panels/${j}`, nested: true }));
  });
  return out;
}

function checkDashboard(file) {
  const errors = [];
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return [`cannot read: ${e.message}`];
  }
  let dash;
  try {
    dash = JSON.parse(text);
  } catch (e) {
    return [`not valid JSON: ${e.message}`];
  }
  if (dash === null || typeof dash !== "object" || Array.isArray(dash)) return ["top level is not a JSON object"];
  delete dash.__inputs;
  delete dash.__requires;

  if (!dashboardValidate(dash)) {
    for (const e of dashboardValidate.errors) {
      const d = describeAjvError(e, dash);
      if (d) errors.push(`Dashboard schema: ${d}`);
    }
  }

  const panels = allPanels(dash);
  const ids = new Map();
  for (const { p, at } of panels) {
    if (!p || typeof p !== "object") continue;
    const label = `${at} ${panelLabel(p)}`;
    if (ids.has(p.id)) errors.push(`${label}: duplicate panel id (also ${ids.get(p.id)})`);
    else ids.set(p.id, at);

    const g = p.gridPos;
    if (g && [g.x, g.y, g.w, g.h].every(Number.isInteger)) {
      if (g.x < 0 || g.y < 0 || g.w < 1 || g.h < 1 || g.x + g.w > 24) {
        errors.push(`${label}: gridPos ${show(g)} is outside the 24-column grid`);
      }
    } else if (p.type !== "row" || g) {
      errors.push(`${label}: gridPos needs integer x, y, w, h (got ${show(g)})`);
    }

    if (p.type === "row") continue;
    const refIds = new Set();
    for (const t of p.targets ?? []) {
      if (typeof t?.refId !== "string" || t.refId === "") errors.push(`${label}: a target has no refId`);
      else if (refIds.has(t.refId)) errors.push(`${label}: duplicate target refId ${t.refId}`);
      else refIds.add(t.refId);
    }

    const v = panelValidatorsFor(p.type);
    if (v === null) {
      errors.push(`${label}: no panelcfg schema for panel type "${p.type}" in @grafana/schema`);
      continue;
    }
    if (v.options && !v.options(p.options ?? {})) {
      for (const e of v.options.errors) {
        const d = describeAjvError(e, p.options ?? {});
        if (d) errors.push(`${label}: ${p.type} Options schema: options${d === "/" ? "" : d}`);
      }
    }
    const custom = p.fieldConfig?.defaults?.custom;
    if (v.custom && custom !== undefined && !v.custom(custom)) {
      for (const e of v.custom.errors) {
        const d = describeAjvError(e, custom);
        if (d) errors.push(`${label}: ${p.type} FieldConfig schema: fieldConfig.defaults.custom${d}`);
      }
    }
  }

  // Overlaps, among the top-level grid (panels of a collapsed row are laid out when it expands).
  const top = panels.filter((x) => !x.nested && x.p?.gridPos);
  for (let i = 0; i < top.length; i++) {
    for (let j = i + 1; j < top.length; j++) {
      const a = top[i].p.gridPos;
      const b = top[j].p.gridPos;
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
        errors.push(`${panelLabel(top[i].p)} overlaps ${panelLabel(top[j].p)}: ${show(a)} vs ${show(b)}`);
      }
    }
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------

let files = process.argv.slice(2).map((f) => path.resolve(f));
if (files.length === 0) {
  const dir = path.join(repoRoot, "grafana", "dashboards");
  files = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => path.join(dir, f));
  if (files.length === 0) fatal(`no dashboards in ${dir}`);
}

let failed = 0;
for (const file of files) {
  const rel = path.relative(process.cwd(), file);
  const name = rel && !rel.startsWith("..") ? rel : file;
  const errors = checkDashboard(file);
  if (errors.length === 0) {
    console.log(`ok   ${name} (valid against @grafana/schema ${schemaPkgVersion} Dashboard + panelcfg types)`);
  } else {
    failed++;
    console.error(`FAIL ${name}: ${errors.length} error(s) against @grafana/schema ${schemaPkgVersion}`);
    for (const e of errors) console.error(`  - ${e}`);
  }
}
if (failed > 0) {
  console.error(`${failed} of ${files.length} dashboard(s) invalid`);
  process.exit(1);
}
