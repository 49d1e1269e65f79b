import { describe, expect, it } from 'vitest';
import { findLoginForm } from '../src/login-form.js';

const PAGE = 'https://site.example/accounts/login/?next=/members/1';

const DJANGO_LIKE = `<!doctype html><html><body>
<form action="/search" method="get"><input name="q"><button>Search</button></form>
<form method="post" action="?next=/members/1">
  <input type="hidden" name="csrfmiddlewaretoken" value="tok123">
  <input type="text" name="username">
  <input type="password" name="password">
  <input type="checkbox" name="remember" checked>
  <input type="checkbox" name="newsletter">
  <select name="lang"><option value="en">English</option><option value="de" selected>Deutsch</option></select>
  <textarea name="note">hi</textarea>
  <input type="text" name="disabled_one" value="x" disabled>
  <button type="submit" name="login" value="1">Log in</button>
  <button type="submit" name="other" value="2">Other</button>
</form></body></html>`;

describe('finding the login form of a page', () => {
  it('picks the form holding the fields the tenant fills in, not the first form on the page', () => {
    const form = findLoginForm(DJANGO_LIKE, PAGE, { fields: ['username', 'password'] });
    expect(form?.method).toBe('POST');
    expect(form?.action).toBe('https://site.example/accounts/login/?next=/members/1');
  });

  it('keeps hidden fields, checked boxes, selected options and the first submit button, as a browser sends them', () => {
    const form = findLoginForm(DJANGO_LIKE, PAGE, { fields: ['username', 'password'] });
    expect(form?.fields).toEqual([
      ['csrfmiddlewaretoken', 'tok123'],
      ['username', ''],
      ['password', ''],
      ['remember', 'on'],
      ['lang', 'de'],
      ['note', 'hi'],
      ['login', '1'],
    ]);
  });

  it('takes the form a selector names, or the form around the element it names', () => {
    expect(findLoginForm(DJANGO_LIKE, PAGE, { fields: [], selector: 'form[action="/search"]' })?.action).toBe(
      'https://site.example/search',
    );
    expect(findLoginForm(DJANGO_LIKE, PAGE, { fields: [], selector: 'input[name=q]' })?.method).toBe('GET');
  });

  it('falls back to the form with a password field when no form holds every field', () => {
    const form = findLoginForm(DJANGO_LIKE, PAGE, { fields: ['email', 'password'] });
    expect(form?.fields.map(([name]) => name)).toContain('csrfmiddlewaretoken');
  });

  it('resolves the action against <base href>, and an empty action to the page itself', () => {
    const based =
      '<base href="https://auth.example/sso/"><form method=post action="login"><input type=password name=p></form>';
    expect(findLoginForm(based, PAGE, { fields: ['p'] })?.action).toBe('https://auth.example/sso/login');
    const empty = '<form method="POST"><input type="password" name="p"></form>';
    expect(findLoginForm(empty, PAGE, { fields: ['p'] })?.action).toBe(PAGE);
  });

  it('finds nothing when there is no such form, a bad selector, or an action that is not http(s)', () => {
    expect(findLoginForm('<p>no forms</p>', PAGE, { fields: ['username'] })).toBeUndefined();
    expect(findLoginForm(DJANGO_LIKE, PAGE, { fields: [], selector: '#nope' })).toBeUndefined();
    expect(findLoginForm(DJANGO_LIKE, PAGE, { fields: [], selector: '::::' })).toBeUndefined();
    const script = '<form action="javascript:void(0)"><input type="password" name="p"></form>';
    expect(findLoginForm(script, PAGE, { fields: ['p'] })).toBeUndefined();
  });

  it('prefers the login form over a sign-up form that holds the same fields and more', () => {
    const page = `<form action="/signup" method="post"><input name="username"><input type="password" name="password">
      <input type="password" name="password2"><input name="email"></form>
      <form action="/login" method="post"><input type="hidden" name="csrf" value="t"><input name="username">
      <input type="password" name="password"></form>`;
    expect(findLoginForm(page, PAGE, { fields: ['username', 'password'] })?.action).toBe('https://site.example/login');
  });
});
