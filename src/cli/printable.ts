// Text output shows names from the node's filesystem (config file names, errors quoting them): a
// newline or an escape sequence in a file name must not forge a line or restyle the terminal.

/** `text` with control characters written as escapes (\n, \t, \x1b), everything else as is. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => {
    switch (char) {
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default:
        return `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`;
    }
  });
}
