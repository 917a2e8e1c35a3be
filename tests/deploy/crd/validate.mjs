// Validate prometheus-operator objects against the operator's own CRD schemas, as the API server
// would on `kubectl apply`: types, enums, patterns and required fields, from
// @kubernetes-models/prometheus-operator (schemas generated from the operator's CRDs).
//
//   node validate.mjs < objects.json      a JSON array of manifests
//
// Prints one line per object ("ok KIND NAME" or "invalid KIND NAME: REASON") and exits 1 when any
// is invalid, 2 when a kind is not a monitoring.coreos.com/v1 object this script knows.
// Unknown fields are not errors here (the API server prunes them, it does not refuse them):
// tests/deploy checks the field names it uses against the API itself.
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const MODELS = { PodMonitor, PrometheusRule };

let status = 0;
for (const object of JSON.parse(readFileSync(0, "utf-8"))) {
  const label = `${object.kind} ${object.metadata?.name}`;
  const Model = object.apiVersion === "monitoring.coreos.com/v1" ? MODELS[object.kind] : undefined;
  if (Model === undefined) {
    console.log(`unknown ${label} (${object.apiVersion})`);
    status = 2;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${label}`);
  } catch (error) {
    console.log(`invalid ${label}: ${error.message}`);
    status = Math.max(status, 1);
  }
}
process.exit(status);
