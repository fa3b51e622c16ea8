/**
 * Escaping for the report formats. Every string that came from a trace, an adapter or a results file (names,
 * messages, stderr, file paths, replay commands) goes through one of these before it reaches XML, HTML or Markdown;
 * spec text goes through them too, since it may hold `<` and `&`.
 *
 * @module
 */

const ENTITIES: Record<string, string> = { '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' };

/**
 * Escapes text for XML 1.0 / HTML content and attribute values (quoted with `"` or `'`). Control characters XML
 * forbids even as references (all below U+0020 but tab, LF, CR, and U+FFFE/U+FFFF) and lone surrogates are
 * replaced by U+FFFD, so the output is always well-formed.
 */
export function escapeXml(s: string): string {
  let out = '';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if ((code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0xfffe || code === 0xffff)
      out += '\uFFFD';
    else if (code >= 0xd800 && code <= 0xdfff) out += '\uFFFD';
    else out += ENTITIES[ch] ?? ch;
  }
  return out;
}

/** HTML escaping: the same as {@link escapeXml} (safe in element content and in quoted attributes). */
export const escapeHtml = escapeXml;

/**
 * Untrusted text as an inline code span of GitHub-flavoured Markdown, safe inside a table cell: an HTML `<code>`
 * element with the text entity-escaped, `|` as `&#124;` (it would end the cell), new lines as spaces.
 */
export function mdCode(s: string): string {
  return `<code>${escapeXml(s.replace(/[\r\n]+/g, ' ')).replace(/\|/g, '&#124;')}</code>`;
}

/**
 * Untrusted text as plain Markdown text (table-safe): the characters that start emphasis, code, links or end a table
 * cell backslashed, then HTML-escaped (so `<` cannot open a tag).
 */
export function mdText(s: string): string {
  return escapeXml(s.replace(/[\r\n]+/g, ' ').replace(/([\\`*_[\]|~])/g, '\\$1'));
}
