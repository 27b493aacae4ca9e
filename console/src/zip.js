// Code packages in the browser: a zip becomes a map of files (path -> {data, mode}) and back.
// Unix modes are kept (a `bootstrap` must stay executable), read from the central directory.
import { unzipSync, zipSync, strToU8 } from 'fflate';

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Largest file the editor opens as text. */
export const EDITABLE_MAX = 1024 * 1024;

/** Unix modes by entry name, from the zip's central directory (none when absent). */
function modes(bytes) {
  const out = new Map();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The end-of-central-directory record is within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65_557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return out;
  const count = view.getUint16(eocd + 10, true);
  let p = view.getUint32(eocd + 16, true);
  for (let n = 0; n < count && p + 46 <= bytes.length; n++) {
    if (view.getUint32(p, true) !== 0x02014b50) break;
    const madeBy = view.getUint8(p + 5);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    const external = view.getUint32(p + 38, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // The whole Unix mode: its file type too (a symbolic link stays one).
    if (madeBy === 3 && external >>> 16) out.set(name, external >>> 16);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** A package's files, folders left implicit. Throws on a malformed zip. */
export function readZip(bytes) {
  const entries = unzipSync(bytes);
  const mode = modes(bytes);
  const files = new Map();
  for (const [name, data] of Object.entries(entries)) {
    if (name.endsWith('/')) continue;
    files.set(name, { data, mode: mode.get(name) ?? 0o644 });
  }
  return files;
}

/** Whether the entry is a symbolic link (its data is the link's target). */
export const isLink = (file) => (file.mode & 0o170000) === 0o120000;

/** The file as text, or null when it is binary, a link, or too large to edit. */
export function asText(file) {
  if (isLink(file) || file.data.length > EDITABLE_MAX || file.data.includes(0)) return null;
  try {
    return decoder.decode(file.data);
  } catch {
    return null;
  }
}

export const textFile = (text, mode = 0o644) => ({ data: strToU8(text), mode });

/** A zip of the files, each with its Unix mode. Deterministic: names sorted, fixed time. */
export function writeZip(files) {
  const input = {};
  for (const name of [...files.keys()].sort()) {
    const f = files.get(name);
    const mode = f.mode & 0o170000 ? f.mode : 0o100000 | f.mode;
    input[name] = [f.data, { os: 3, attrs: (mode << 16) >>> 0, mtime: new Date('2020-01-01T00:00:00Z') }];
  }
  return zipSync(input, { level: 6 });
}

/** Files picked from an <input type=file webkitdirectory>: paths below the chosen folder. */
export async function readFolder(fileList) {
  const files = new Map();
  for (const f of fileList) {
    const rel = f.webkitRelativePath || f.name;
    const path = rel.includes('/') ? rel.slice(rel.indexOf('/') + 1) : rel;
    if (!path || path.split('/').some((p) => p === '.git' || p === '__pycache__')) continue;
    const data = new Uint8Array(await f.arrayBuffer());
    const exec = path === 'bootstrap' || path.endsWith('.sh');
    files.set(path, { data, mode: exec ? 0o755 : 0o644 });
  }
  return files;
}
