import { selectAll, selectOne } from 'css-select';
import type { AnyNode, Element } from 'domhandler';
import { getAttributeValue, textContent } from 'domutils';
import { parseDocument } from 'htmlparser2';

/** A login form found on a page: where it goes, how, and the fields a browser would send. */
export interface LoginForm {
  action: string;
  method: 'GET' | 'POST';
  /** Name and value pairs in document order (hidden CSRF tokens included). */
  fields: Array<[string, string]>;
}

export interface FindLoginFormOptions {
  /** The fields the tenant fills in: the form that holds all of them is the login form. */
  fields: readonly string[];
  /** A CSS selector naming the form (or an element inside it), when several would do. */
  selector?: string | undefined;
}

/** Inputs a person does not fill in: hidden values and buttons. */
const NOT_FILLED = new Set(['hidden', 'submit', 'image', 'button', 'reset']);

/** Input types a browser never submits as data (buttons are sent only when clicked). */
const NOT_DATA = new Set(['submit', 'image', 'button', 'reset', 'file']);

/**
 * Finds the login form of a page as a person would: the one `selector` names, else the first
 * that holds every field the tenant fills in, else the first with a password input. Its fields
 * are what a browser sends: hidden inputs (CSRF tokens) with their values, checked boxes,
 * selected options, and the first submit button when it has a name. Undefined when there is no
 * such form or its action is not an http(s) URL.
 */
export function findLoginForm(html: string, pageUrl: string, options: FindLoginFormOptions): LoginForm | undefined {
  const document = parseDocument(html);
  const form =
    options.selector !== undefined
      ? formBySelector(options.selector, document)
      : formByFields(document, options.fields);
  if (form === undefined) return undefined;
  const baseHref = selectOne<AnyNode, Element>('base[href]', document)?.attribs.href;
  const base = (baseHref === undefined ? undefined : resolve(baseHref, pageUrl)) ?? pageUrl;
  // No action means the page's own address, query included, as browsers do.
  const rawAction = getAttributeValue(form, 'action')?.trim();
  const action = rawAction === undefined || rawAction === '' ? pageUrl : resolve(rawAction, base);
  if (action === undefined) return undefined;
  const method = getAttributeValue(form, 'method')?.trim().toLowerCase() === 'post' ? 'POST' : 'GET';
  return { action, method, fields: formFields(form) };
}

function formBySelector(selector: string, document: AnyNode): Element | undefined {
  let found: Element | null;
  try {
    found = selectOne<AnyNode, Element>(selector, document);
  } catch {
    return undefined;
  }
  if (found === null) return undefined;
  if (found.name === 'form') return found;
  return selectOne<AnyNode, Element>('form', found) ?? closestForm(found);
}

function formByFields(document: AnyNode, fields: readonly string[]): Element | undefined {
  const forms = selectAll<AnyNode, Element>('form', document);
  // Of the forms that hold every field, the one with the fewest other fields to fill: a sign-up
  // form (username, password, password2, email) holds a login's fields too.
  let best: { form: Element; extra: number } | undefined;
  for (const form of fields.length === 0 ? [] : forms) {
    const names = new Set(
      selectAll<AnyNode, Element>('input[name], select[name], textarea[name]', form)
        .filter((element) => !NOT_FILLED.has((element.attribs.type ?? 'text').toLowerCase()))
        .map((element) => element.attribs.name),
    );
    if (!fields.every((field) => names.has(field))) continue;
    const extra = names.size - fields.length;
    if (best === undefined || extra < best.extra) best = { form, extra };
  }
  return best?.form ?? forms.find((form) => selectOne<AnyNode, Element>('input[type="password" i]', form) !== null);
}

function closestForm(element: Element): Element | undefined {
  let current = element.parent;
  while (current !== null) {
    if ((current as Element).name === 'form') return current as Element;
    current = current.parent;
  }
  return undefined;
}

function formFields(form: Element): Array<[string, string]> {
  const fields: Array<[string, string]> = [];
  let submit: [string, string] | undefined;
  for (const element of selectAll<AnyNode, Element>('input, select, textarea, button', form)) {
    const name = element.attribs.name;
    if (element.attribs.disabled !== undefined) continue;
    if (element.name === 'button') {
      const type = (element.attribs.type ?? 'submit').toLowerCase();
      if (type === 'submit' && submit === undefined) submit = name ? [name, element.attribs.value ?? ''] : ['', ''];
      continue;
    }
    if (!name) continue;
    if (element.name === 'textarea') {
      fields.push([name, textContent(element)]);
      continue;
    }
    if (element.name === 'select') {
      const option =
        selectOne<AnyNode, Element>('option[selected]', element) ?? selectOne<AnyNode, Element>('option', element);
      if (option !== null) fields.push([name, option.attribs.value ?? textContent(option).trim()]);
      continue;
    }
    const type = (element.attribs.type ?? 'text').toLowerCase();
    if (NOT_DATA.has(type)) {
      if (type === 'submit' && submit === undefined) submit = [name, element.attribs.value ?? ''];
      continue;
    }
    if ((type === 'checkbox' || type === 'radio') && element.attribs.checked === undefined) continue;
    fields.push([name, element.attribs.value ?? (type === 'checkbox' || type === 'radio' ? 'on' : '')]);
  }
  // Submitting by its first button sends that button's name and value, as a click would.
  if (submit !== undefined && submit[0] !== '') fields.push(submit);
  return fields;
}

/** An absolute http(s) URL, or undefined. */
function resolve(href: string, base: string): string | undefined {
  try {
    const url = new URL(href, base);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}
