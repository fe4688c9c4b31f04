// Names a user may choose that JavaScript treats specially, or that break naive parsing (issue 9
// item 1). Each list holds only names Google accepts for that kind of resource, so a round trip
// through the sandbox must give back exactly these strings.

/** Property names of Object.prototype (and `prototype`): a plain-object dictionary loses or misreads them. */
export const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];

/**
 * Cloud Storage object names: "any sequence of valid Unicode characters, of length 1-1024 bytes when
 * UTF-8 encoded", except CR, LF, "." and ".." (https://cloud.google.com/storage/docs/objects#naming).
 */
export const OBJECT_NAMES = [
  ...PROTOTYPE_NAMES,
  'runs/__proto__/model.pkl',
  'a.b.c',
  '.hidden',
  'dir/sub/leaf',
  'restore',
  'ends/with/restore',
  'o/iam',
  'trailing/',
  'double//slash',
  `quote's "double"`,
  'back\\slash',
  'percent %2F %25 and ?query#hash',
  'plus+and space',
  'tab\there',
  'bell\u0007 escape\u001b unit\u001f del\u007f',
  'emoji 🙂🧪 and é',
  'مرحبا بالعالم',
  'rtl \u202eoverride\u202c',
  'x'.repeat(250),
];

/** Label keys: lower-case letters, digits, `_` and `-`, starting with a letter, at most 63 characters (https://cloud.google.com/resource-manager/docs/labels-overview#requirements). */
export const LABEL_KEYS = ['constructor', 'prototype', 'valueof', 'tostring', 'hasownproperty', 'isprototypeof'];

/** Cloud Run env var names (google/cloud/run/v2/k8s.min.proto EnvVar.name: any name up to 32768 characters; "=" is refused). */
export const ENV_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '__defineGetter__', 'prototype'];

/** Secret IDs: "uppercase and lowercase letters, numerals, and the hyphen (-) and underscore (_)", up to 255 (google/cloud/secretmanager/v1/service.proto). */
export const SECRET_IDS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '__defineGetter__'];
