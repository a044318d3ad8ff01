// formatBytes says how large a file is, in the units people read.
export function formatBytes(n) {
  if (n === undefined || n === null || Number.isNaN(Number(n))) return '';
  if (n < 1024) return `${n} bytes`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}
