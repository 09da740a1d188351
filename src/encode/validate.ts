import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import schema from '../../schema/runtime-evidence.v1.json';
import { errorMessage } from '../errors';

/**
 * createRecordValidator compiles the record contract (JSON Schema draft 2020-12, with the
 * ipv4/ipv6 formats) and returns a function giving undefined for a valid line or the reasons.
 */
export function createRecordValidator(): (line: string) => string | undefined {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  const validate = ajv.compile(schema as object);
  return (line: string) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      return `not JSON (${errorMessage(err)})`;
    }
    if (validate(value)) return undefined;
    return (validate.errors ?? []).slice(0, 4).map((e) => `${e.instancePath || '/'} ${e.message ?? 'invalid'}`).join('; ');
  };
}
