import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { harness } from '../helpers/agent-harness.js';
import { UI_DIR } from '../../src/api/ui.js';

/**
 * The dashboard's files (src/ui/, served at /ui/): public, the same bytes as in the repository,
 * under a strict Content-Security-Policy; the HTML holds no inline script, style or handler (the
 * CSP would block them) and loads nothing from another origin. The page itself runs in a real
 * browser in test/ui/dashboard.test.ts.
 */
describe('dashboard files (/ui/, app.inject)', () => {
  test('served without a token, with the CSP and the bytes of src/ui/', async () => {
    const h = await harness();
    try {
      const redirect = await h.app.inject({ url: '/ui' });
      assert.equal(redirect.statusCode, 302);
      assert.equal(redirect.headers.location, '/ui/');
      for (const [url, file, type] of [
        ['/ui/', 'index.html', /^text\/html/], ['/ui/app.js', 'app.js', /^text\/javascript/],
        ['/ui/style.css', 'style.css', /^text\/css/], ['/ui/favicon.svg', 'favicon.svg', /^image\/svg\+xml/],
      ] as const) {
        const r = await h.app.inject({ url });
        assert.equal(r.statusCode, 200, url);
        assert.match(String(r.headers['content-type']), type, url);
        assert.deepEqual(r.rawPayload, readFileSync(join(UI_DIR, file)), url);
        const csp = String(r.headers['content-security-policy']);
        assert.match(csp, /(^|; )default-src 'self'(;|$)/, url);
        assert.match(csp, /(^|; )script-src 'self'(;|$)/, url);
        assert.match(csp, /(^|; )form-action 'none'(;|$)/, url);
        assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*|https?:/, url);
        assert.equal(r.headers['x-content-type-options'], 'nosniff');
        assert.equal(r.headers['referrer-policy'], 'no-referrer');
      }
      assert.equal((await h.app.inject({ url: '/ui/nope.js' })).statusCode, 404);
      // The data behind the page still needs a token.
      assert.equal((await h.app.inject({ url: '/v1/status' })).statusCode, 401);
      // Not part of the API description.
      assert.ok(!Object.keys((await h.app.inject({ url: '/openapi.json' })).json().paths).some((p) => p.startsWith('/ui')));
    } finally {
      await h.close();
    }
  });

  test('the HTML has no inline script, style or handler and names no other origin', () => {
    const html = readFileSync(join(UI_DIR, 'index.html'), 'utf8');
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      assert.match(m[1]!, /\bsrc="\/ui\/[\w.-]+"/, 'every script is a file of /ui/');
      assert.equal(m[2]!.trim(), '', 'no inline script');
    }
    assert.doesNotMatch(html, /<style\b|\sstyle=|\son[a-z]+=/i, 'no inline style or event handler');
    for (const m of html.matchAll(/\b(?:src|href)="([^"]*)"/g)) assert.match(m[1]!, /^\/ui\//, `served by the agent: ${m[1]}`);
    const js = readFileSync(join(UI_DIR, 'app.js'), 'utf8');
    assert.doesNotMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|localStorage/, 'no HTML from data, no eval, no persistent token');
    assert.doesNotMatch(js, /https?:\/\//, 'no absolute URL: every request goes to the page\'s own origin');
  });
});
