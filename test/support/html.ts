/**
 * Just enough HTML parsing for a scripted browser: forms and their controls, links, the title and the
 * visible text. It follows the HTML tokenizer where login pages tend to differ: quoted, single-quoted
 * and unquoted attributes, attributes without values, upper-case names, entities (named, decimal,
 * hex), comments, raw-text elements (`script`, `style`) whose content is not markup, and RCDATA
 * (`textarea`, `title`) whose content is text with entities. A nested `<form>` start tag is ignored,
 * as the HTML parser does, and controls outside a form join it through `form="id"`.
 */

export interface HtmlTag {
  name: string;
  attributes: Map<string, string>;
}

export interface FormOption {
  value: string;
  text: string;
  selected: boolean;
  disabled: boolean;
}

export interface FormControl {
  kind: 'input' | 'button' | 'textarea' | 'select';
  /** Lower-cased `type`; defaults: input → text, button → submit. */
  type: string;
  name: string;
  value: string;
  checked: boolean;
  disabled: boolean;
  /** Label of a button (its text, or `value` for `<input type=submit>`). */
  label: string;
  options: FormOption[];
  multiple: boolean;
  attributes: Map<string, string>;
}

export interface HtmlForm {
  /** Position among the page's forms. */
  index: number;
  id: string | undefined;
  name: string | undefined;
  /** The `action` attribute as written ('' when absent: the page's own URL). */
  action: string;
  method: 'get' | 'post' | 'dialog';
  enctype: string;
  controls: FormControl[];
  attributes: Map<string, string>;
}

export interface HtmlLink {
  href: string;
  text: string;
}

export interface ParsedDocument {
  forms: HtmlForm[];
  links: HtmlLink[];
  title: string;
  /** `<base href>` if the page has one. */
  baseHref: string | undefined;
  /** Visible text, whitespace collapsed (script and style excluded). */
  text: string;
}

type Token = { type: 'start'; tag: HtmlTag; selfClosing: boolean } | { type: 'end'; name: string } | { type: 'text'; text: string };

const RAW_TEXT = new Set(['script', 'style', 'noscript', 'template', 'xmp', 'iframe', 'noembed', 'noframes']);
const RCDATA = new Set(['textarea', 'title']);

/** Splits HTML into start tags, end tags and (entity-decoded) text. */
export function tokenize(html: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let text = '';
  const flushText = () => {
    if (text) tokens.push({ type: 'text', text: decodeEntities(text, false) });
    text = '';
  };
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      text += html.slice(i);
      break;
    }
    text += html.slice(i, lt);
    i = lt;
    const next = html[i + 1] ?? '';
    if (html.startsWith('<!--', i)) {
      const end = html.indexOf('-->', i + 4);
      i = end < 0 ? html.length : end + 3;
      continue;
    }
    if (next === '!' || next === '?') {
      const end = html.indexOf('>', i);
      i = end < 0 ? html.length : end + 1;
      continue;
    }
    if (next === '/' && /[A-Za-z]/.test(html[i + 2] ?? '')) {
      const end = html.indexOf('>', i);
      flushText();
      const name = html
        .slice(i + 2, end < 0 ? html.length : end)
        .trim()
        .split(/[\s/]/)[0]!
        .toLowerCase();
      tokens.push({ type: 'end', name });
      i = end < 0 ? html.length : end + 1;
      continue;
    }
    if (!/[A-Za-z]/.test(next)) {
      // A "<" that does not open a tag is text ("a < b").
      text += '<';
      i += 1;
      continue;
    }
    flushText();
    const { tag, selfClosing, end } = readStartTag(html, i + 1);
    tokens.push({ type: 'start', tag, selfClosing });
    i = end;
    if (RAW_TEXT.has(tag.name) || RCDATA.has(tag.name)) {
      const close = findClosingTag(html, i, tag.name);
      const content = html.slice(i, close.start);
      if (RCDATA.has(tag.name) && content) tokens.push({ type: 'text', text: decodeEntities(content, false) });
      tokens.push({ type: 'end', name: tag.name });
      i = close.end;
    }
  }
  flushText();
  return tokens;
}

function findClosingTag(html: string, from: number, name: string): { start: number; end: number } {
  const pattern = new RegExp(`</${name}(?=[\\s/>])`, 'ig');
  pattern.lastIndex = from;
  const match = pattern.exec(html);
  if (!match) return { start: html.length, end: html.length };
  const gt = html.indexOf('>', match.index);
  return { start: match.index, end: gt < 0 ? html.length : gt + 1 };
}

/** Reads `name attr=value ...>` starting just after "<"; quotes may contain ">" . */
function readStartTag(html: string, start: number): { tag: HtmlTag; selfClosing: boolean; end: number } {
  let i = start;
  while (i < html.length && !/[\s/>]/.test(html[i]!)) i++;
  const name = html.slice(start, i).toLowerCase();
  const attributes = new Map<string, string>();
  let selfClosing = false;
  while (i < html.length) {
    while (i < html.length && /\s/.test(html[i]!)) i++;
    const c = html[i];
    if (c === undefined) break;
    if (c === '>') {
      i++;
      break;
    }
    if (c === '/') {
      i++;
      if (html[i] === '>') {
        selfClosing = true;
        i++;
        break;
      }
      continue;
    }
    // Attribute name: up to whitespace, "/", ">" or "=" (a leading "=" belongs to the name).
    const nameStart = i;
    i++;
    while (i < html.length && !/[\s/>=]/.test(html[i]!)) i++;
    const attributeName = html.slice(nameStart, i).toLowerCase();
    while (i < html.length && /\s/.test(html[i]!)) i++;
    let value = '';
    if (html[i] === '=') {
      i++;
      while (i < html.length && /\s/.test(html[i]!)) i++;
      const quote = html[i];
      if (quote === '"' || quote === "'") {
        const close = html.indexOf(quote, i + 1);
        value = html.slice(i + 1, close < 0 ? html.length : close);
        i = close < 0 ? html.length : close + 1;
      } else {
        const valueStart = i;
        while (i < html.length && !/[\s>]/.test(html[i]!)) i++;
        value = html.slice(valueStart, i);
      }
      value = decodeEntities(value, true);
    }
    // Duplicate attributes: the first one wins.
    if (!attributes.has(attributeName)) attributes.set(attributeName, value);
  }
  return { tag: { name, attributes }, selfClosing, end: i };
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  copy: '\u00a9',
  reg: '\u00ae',
  hellip: '\u2026',
  mdash: '\u2014',
  ndash: '\u2013',
  lsquo: '\u2018',
  rsquo: '\u2019',
  ldquo: '\u201c',
  rdquo: '\u201d',
  middot: '\u00b7',
  bull: '\u2022',
  times: '\u00d7',
  rarr: '\u2192',
  larr: '\u2190',
  laquo: '\u00ab',
  raquo: '\u00bb',
  euro: '\u20ac',
  shy: '\u00ad',
  sol: '/',
  equals: '=',
  colon: ':',
  num: '#',
  excl: '!',
  quest: '?',
  period: '.',
  comma: ',',
  lpar: '(',
  rpar: ')',
  semi: ';',
  dollar: '$',
  percnt: '%',
  plus: '+',
  grave: '`',
  Tab: '\t',
  NewLine: '\n',
};
/** Entities the HTML spec also recognises without the trailing ";" (the common subset). */
const LEGACY_ENTITIES = new Set(['amp', 'lt', 'gt', 'quot', 'nbsp', 'copy', 'reg', 'AMP', 'LT', 'GT', 'QUOT']);

/**
 * Decodes character references. In attribute values a legacy reference without ";" followed by an
 * alphanumeric or "=" stays literal (so `?a=1&copy=2` survives), as the HTML tokenizer specifies.
 */
export function decodeEntities(input: string, inAttribute: boolean): string {
  if (!input.includes('&')) return input;
  return input.replace(/&(#[xX][0-9a-fA-F]+;?|#[0-9]+;?|[A-Za-z][A-Za-z0-9]*;?)/g, (match, body: string, offset: number) => {
    if (body.startsWith('#')) {
      const hex = body[1] === 'x' || body[1] === 'X';
      const code = Number.parseInt(body.slice(hex ? 2 : 1).replace(';', ''), hex ? 16 : 10);
      if (!Number.isFinite(code) || code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return '\ufffd';
      return String.fromCodePoint(code);
    }
    const terminated = body.endsWith(';');
    const name = terminated ? body.slice(0, -1) : body;
    // The upper-case legacy forms (&AMP; &LT; &GT; &QUOT;) are the same characters.
    const replacement = NAMED_ENTITIES[name] ?? (LEGACY_ENTITIES.has(name) ? NAMED_ENTITIES[name.toLowerCase()] : undefined);
    if (replacement === undefined) return match;
    if (terminated) return replacement;
    if (!LEGACY_ENTITIES.has(name)) return match;
    const following = input[offset + match.length] ?? '';
    if (inAttribute && /[A-Za-z0-9=]/.test(following)) return match;
    return replacement;
  });
}

/** Parses the parts of a page a scripted browser needs. */
export function parseDocument(html: string): ParsedDocument {
  const tokens = tokenize(html);
  const forms: HtmlForm[] = [];
  const links: HtmlLink[] = [];
  const formsById = new Map<string, HtmlForm>();
  /** Controls with a `form` attribute are attached after all forms are known (the form may come later). */
  const deferred: { formId: string; control: FormControl }[] = [];
  let currentForm: HtmlForm | undefined;
  let title = '';
  let baseHref: string | undefined;
  const textParts: string[] = [];
  let disabledFieldsets = 0;
  const fieldsetStack: boolean[] = [];

  // Elements whose text we collect while they are open.
  let openButton: { control: FormControl; text: string[] } | undefined;
  let openTextarea: FormControl | undefined;
  let openSelect: FormControl | undefined;
  let openOption: { option: FormOption; text: string[]; hasValue: boolean } | undefined;
  let openLink: { link: HtmlLink; text: string[] } | undefined;
  let inTitle = false;
  const rawDepth: string[] = [];

  const attach = (control: FormControl) => {
    const formId = control.attributes.get('form');
    if (formId !== undefined) deferred.push({ formId, control });
    else currentForm?.controls.push(control);
  };
  const closeOption = () => {
    if (!openOption || !openSelect) return;
    const text = collapse(openOption.text.join(''));
    openOption.option.text = text;
    if (!openOption.hasValue) openOption.option.value = text;
    openOption = undefined;
  };

  for (const token of tokens) {
    if (token.type === 'text') {
      if (rawDepth.length > 0) continue;
      if (inTitle) title += token.text;
      else textParts.push(token.text);
      openButton?.text.push(token.text);
      openOption?.text.push(token.text);
      openLink?.text.push(token.text);
      if (openTextarea) openTextarea.value += token.text;
      continue;
    }
    if (token.type === 'end') {
      switch (token.name) {
        case 'form':
          currentForm = undefined;
          break;
        case 'button':
          if (openButton) openButton.control.label = collapse(openButton.text.join(''));
          openButton = undefined;
          break;
        case 'textarea':
          // The parser drops one newline right after <textarea>.
          if (openTextarea) openTextarea.value = openTextarea.value.replace(/^\r?\n/, '');
          openTextarea = undefined;
          break;
        case 'option':
          closeOption();
          break;
        case 'select':
          closeOption();
          openSelect = undefined;
          break;
        case 'a':
          if (openLink) openLink.link.text = collapse(openLink.text.join(''));
          openLink = undefined;
          break;
        case 'title':
          inTitle = false;
          break;
        case 'fieldset':
          if (fieldsetStack.pop()) disabledFieldsets--;
          break;
        default:
          if (rawDepth.at(-1) === token.name) rawDepth.pop();
      }
      if (['p', 'div', 'br', 'li', 'tr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'label', 'button', 'option', 'td', 'th'].includes(token.name)) textParts.push(' ');
      continue;
    }
    const { tag } = token;
    const attr = (name: string) => tag.attributes.get(name);
    const has = (name: string) => tag.attributes.has(name);
    if (RAW_TEXT.has(tag.name)) {
      rawDepth.push(tag.name);
      continue;
    }
    switch (tag.name) {
      case 'title':
        inTitle = true;
        break;
      case 'base':
        baseHref ??= attr('href');
        break;
      case 'br':
      case 'p':
      case 'div':
      case 'li':
      case 'tr':
      case 'td':
        textParts.push(' ');
        break;
      case 'fieldset': {
        const disabled = has('disabled');
        fieldsetStack.push(disabled);
        if (disabled) disabledFieldsets++;
        break;
      }
      case 'form': {
        if (currentForm) break; // nested forms are ignored by the HTML parser
        const method = (attr('method') ?? 'get').toLowerCase();
        currentForm = {
          index: forms.length,
          id: attr('id'),
          name: attr('name'),
          action: (attr('action') ?? '').trim(),
          method: method === 'post' ? 'post' : method === 'dialog' ? 'dialog' : 'get',
          enctype: (attr('enctype') ?? 'application/x-www-form-urlencoded').toLowerCase(),
          controls: [],
          attributes: tag.attributes,
        };
        forms.push(currentForm);
        if (currentForm.id !== undefined) formsById.set(currentForm.id, currentForm);
        if (token.selfClosing) currentForm = undefined;
        break;
      }
      case 'input': {
        const type = (attr('type') ?? 'text').toLowerCase();
        const control = newControl('input', type, tag, disabledFieldsets > 0);
        control.value = attr('value') ?? (type === 'checkbox' || type === 'radio' ? 'on' : '');
        control.checked = has('checked');
        control.label = type === 'submit' ? (attr('value') ?? 'Submit') : type === 'reset' ? (attr('value') ?? 'Reset') : (attr('value') ?? '');
        attach(control);
        break;
      }
      case 'button': {
        const type = (attr('type') ?? 'submit').toLowerCase();
        const control = newControl('button', ['submit', 'reset', 'button'].includes(type) ? type : 'submit', tag, disabledFieldsets > 0);
        control.value = attr('value') ?? '';
        attach(control);
        openButton = { control, text: [] };
        break;
      }
      case 'textarea': {
        const control = newControl('textarea', 'textarea', tag, disabledFieldsets > 0);
        attach(control);
        openTextarea = control;
        break;
      }
      case 'select': {
        const control = newControl('select', has('multiple') ? 'select-multiple' : 'select-one', tag, disabledFieldsets > 0);
        control.multiple = has('multiple');
        attach(control);
        openSelect = control;
        break;
      }
      case 'option': {
        closeOption();
        if (!openSelect) break;
        const option: FormOption = { value: attr('value') ?? '', text: '', selected: has('selected'), disabled: has('disabled') };
        openSelect.options.push(option);
        openOption = { option, text: [], hasValue: has('value') };
        break;
      }
      case 'a': {
        const href = attr('href');
        if (href !== undefined) {
          const link: HtmlLink = { href, text: '' };
          links.push(link);
          openLink = { link, text: [] };
        }
        break;
      }
    }
  }
  for (const { formId, control } of deferred) formsById.get(formId)?.controls.push(control);
  for (const form of forms) sortControlsInTreeOrder(form);
  return { forms, links, title: collapse(title), baseHref, text: collapse(textParts.join('')) };
}

/** Controls attached through `form="id"` were appended last; tree order is their parse order. */
function sortControlsInTreeOrder(form: HtmlForm): void {
  form.controls.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
}
const order = new WeakMap<FormControl, number>();
let sequence = 0;

function newControl(kind: FormControl['kind'], type: string, tag: HtmlTag, inDisabledFieldset: boolean): FormControl {
  const control: FormControl = {
    kind,
    type,
    name: tag.attributes.get('name') ?? '',
    value: '',
    checked: false,
    disabled: tag.attributes.has('disabled') || inDisabledFieldset,
    label: '',
    options: [],
    multiple: false,
    attributes: tag.attributes,
  };
  order.set(control, sequence++);
  return control;
}

function collapse(text: string): string {
  return text.replace(/[\s\u00a0]+/g, ' ').trim();
}

/** Whether a control can be the form's submitter. */
export function isSubmitButton(control: FormControl): boolean {
  return (control.kind === 'button' && control.type === 'submit') || (control.kind === 'input' && (control.type === 'submit' || control.type === 'image'));
}

/**
 * The form data set (HTML "constructing the entry list"): enabled, named controls in tree order;
 * checked checkboxes/radios only; the submitter's name=value and no other button; selected options
 * (the first enabled option of a single select when none is marked).
 */
export function formEntries(form: HtmlForm, submitter?: FormControl): [string, string][] {
  const entries: [string, string][] = [];
  for (const control of form.controls) {
    if (control.disabled) continue;
    if (control.kind === 'button' || (control.kind === 'input' && ['submit', 'image', 'reset', 'button'].includes(control.type))) {
      if (control !== submitter || !isSubmitButton(control)) continue;
      if (control.type === 'image') {
        const prefix = control.name ? `${control.name}.` : '';
        entries.push([`${prefix}x`, '0'], [`${prefix}y`, '0']);
        continue;
      }
      if (control.name) entries.push([control.name, control.value]);
      continue;
    }
    if (!control.name) continue;
    if (control.kind === 'input') {
      if ((control.type === 'checkbox' || control.type === 'radio') && !control.checked) continue;
      if (control.type === 'file') {
        entries.push([control.name, '']);
        continue;
      }
      entries.push([control.name, control.value]);
      continue;
    }
    if (control.kind === 'textarea') {
      entries.push([control.name, control.value.replace(/\r?\n/g, '\r\n')]);
      continue;
    }
    const selected = control.options.filter((option) => option.selected && !option.disabled);
    if (selected.length === 0 && !control.multiple) {
      const first = control.options.find((option) => !option.disabled);
      if (first) selected.push(first);
    }
    for (const option of control.multiple ? selected : selected.slice(-1)) entries.push([control.name, option.value]);
  }
  return entries;
}
