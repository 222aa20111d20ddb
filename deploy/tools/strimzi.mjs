// Validates Strimzi custom resources against the schemas of Strimzi's CRDs, as compiled into
// @kubernetes-models/strimzi-kafka-operator. Reads a JSON array of resources on stdin; prints a JSON array
// of {index, kind, name, errors} (errors empty when valid). Run by deploy/tools/validate.py.
import { readFileSync } from "node:fs";

const input = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const [index, resource] of input.entries()) {
  const { apiVersion = "", kind = "" } = resource;
  const name = resource.metadata?.name ?? "?";
  let errors = [];
  try {
    const module = await import(`@kubernetes-models/strimzi-kafka-operator/${apiVersion}/${kind}`);
    const Model = module[kind] ?? module.default;
    new Model(resource).validate();
  } catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND" || error?.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      errors = [`no Strimzi schema for ${apiVersion} ${kind}`];
    } else if (Array.isArray(error?.errors)) {
      errors = error.errors.map((e) => `${e.instancePath || "/"} ${e.message ?? e.keyword} ${JSON.stringify(e.params ?? {})}`);
    } else {
      errors = [String(error?.message ?? error)];
    }
  }
  results.push({ index, kind, name, errors });
}
process.stdout.write(JSON.stringify(results));
