# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)
"""
The one HTTP client of the fulcrum.lb modules, over ansible.module_utils.urls.

Everything the modules share lives here: the connection options (with their FULCRUM_URL and
FULCRUM_TOKEN fallbacks), error reporting with the API's code and message, retries while the
agent is restarting (connection refused, bounded by restart_timeout), one retry of a guarded write
on 412 with a fresh ETag, and the conversion of the API's change answer (changed, diff, plan,
revision) into a module result.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import socket
import time

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.six.moves import http_client
from ansible.module_utils.urls import open_url


def fulcrum_argument_spec():
    """The connection options every module takes (documented in doc_fragments/fulcrum.py)."""
    return dict(
        url=dict(type='str', default='http://127.0.0.1:9180', fallback=(env_fallback, ['FULCRUM_URL'])),
        token=dict(type='str', no_log=True, fallback=(env_fallback, ['FULCRUM_TOKEN'])),
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        timeout=dict(type='float', default=30),
        restart_timeout=dict(type='int', default=30),
    )


def merge_argument_spec(spec):
    out = fulcrum_argument_spec()
    out.update(spec)
    return out


class FulcrumApiError(Exception):
    """An answer of the API that is not a success, or no answer at all (status None)."""

    def __init__(self, method, path, status, code, message, details=None):
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        super(FulcrumApiError, self).__init__(self.text())

    def text(self):
        where = '%s %s' % (self.method, self.path)
        if self.status is None:
            return 'fulcrum API %s: %s: %s' % (where, self.code, self.message)
        return 'fulcrum API %s: HTTP %s %s: %s' % (where, self.status, self.code, self.message)

    def fail_kwargs(self):
        out = dict(msg=self.text(), http_status=self.status, code=self.code, api_message=self.message)
        if self.details is not None:
            out['details'] = self.details
        return out


def endpoint(address, port):
    """The API's address:port form of a backend, IPv6 in brackets."""
    return '[%s]:%s' % (address, port) if ':' in address else '%s:%s' % (address, port)


def _restarting(exc):
    """True when the error means nobody listens yet (the agent restarting), worth a retry."""
    reason = getattr(exc, 'reason', exc)
    if isinstance(reason, (ConnectionRefusedError, ConnectionResetError)):
        return True
    if isinstance(reason, (http_client.RemoteDisconnected, http_client.BadStatusLine)):
        return True
    if isinstance(reason, (OSError, socket.error)) and getattr(reason, 'errno', None) in (errno.ECONNREFUSED, errno.ECONNRESET):
        return True
    return False


class FulcrumClient(object):
    def __init__(self, module, opener=None, sleep=time.sleep, clock=time.monotonic):
        self.module = module
        p = module.params
        self.base = p['url'].rstrip('/')
        self.token = p.get('token')
        self.validate_certs = p['validate_certs']
        self.ca_path = p.get('ca_path')
        self.timeout = p['timeout']
        self.restart_timeout = p['restart_timeout']
        # Tests replace the transport and the clock; production uses open_url and real time.
        self._open = opener or open_url
        self._sleep = sleep
        self._clock = clock

    # -- transport ---------------------------------------------------------------------------

    def request(self, method, path, body=None, query=None, if_match=None, ok=(200, 201, 202, 204)):
        """(status, parsed JSON body or None, headers as a lower-case dict); raises FulcrumApiError."""
        url = self.base + path
        if query:
            url += '?' + urlencode(sorted(query.items()))
        headers = {'Accept': 'application/json'}
        if self.token:
            headers['Authorization'] = 'Bearer %s' % self.token
        data = None
        if body is not None:
            data = json.dumps(body)
            headers['Content-Type'] = 'application/json'
        if if_match is not None:
            headers['If-Match'] = '"%s"' % if_match
        deadline = self._clock() + max(0, self.restart_timeout)
        delay = 0.25
        while True:
            try:
                resp = self._open(url, method=method, data=data, headers=headers, validate_certs=self.validate_certs,
                                  ca_path=self.ca_path, timeout=self.timeout, follow_redirects='none')
                status = resp.getcode()
                text = resp.read()
                rheaders = dict((k.lower(), v) for k, v in resp.headers.items()) if getattr(resp, 'headers', None) else {}
                parsed = self._json(method, path, status, text)
                break
            except HTTPError as e:
                status = e.code
                try:
                    text = e.read()
                except Exception:
                    text = b''
                rheaders = dict((k.lower(), v) for k, v in e.headers.items()) if getattr(e, 'headers', None) else {}
                parsed = self._json(method, path, status, text, error=True)
                break
            except (URLError, socket.error, http_client.HTTPException) as e:
                if _restarting(e) and self._clock() + delay <= deadline:
                    self._sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                reason = getattr(e, 'reason', e)
                raise FulcrumApiError(method, path, None, 'UNREACHABLE', 'cannot reach %s: %s%s' % (
                    self.base, to_native(reason), ' (retried for %ss while it was refused)' % self.restart_timeout if _restarting(e) else ''))
        if status not in ok:
            if isinstance(parsed, dict) and 'code' in parsed:
                raise FulcrumApiError(method, path, status, parsed.get('code'), parsed.get('message', ''), parsed.get('details'))
            raise FulcrumApiError(method, path, status, 'HTTP_%s' % status, to_text(text or b'')[:500])
        return status, parsed, rheaders

    @staticmethod
    def _json(method, path, status, text, error=False):
        if not text:
            return None
        try:
            return json.loads(to_text(text))
        except ValueError:
            if error:
                return None
            raise FulcrumApiError(method, path, status, 'BAD_RESPONSE', 'not JSON: %s' % to_text(text)[:200])

    def get(self, path, ok=(200,)):
        return self.request('GET', path, ok=ok)

    @staticmethod
    def etag(headers):
        """The revision of an ETag header ("7" or W/"7"), or None."""
        raw = headers.get('etag')
        if raw is None:
            return None
        raw = raw.strip()
        if raw.startswith('W/'):
            raw = raw[2:]
        raw = raw.strip('"')
        return int(raw) if raw.isdigit() else None

    def guarded(self, read, write):
        """
        read() -> (revision, current); write(revision, current) -> answer. The write carries
        If-Match: revision; a 412 (someone changed the state in between) re-reads and writes once more.
        """
        revision, current = read()
        try:
            return write(revision, current)
        except FulcrumApiError as e:
            if e.status != 412:
                raise
        revision, current = read()
        return write(revision, current)

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def service_path(name):
        return '/v1/services/%s' % quote(name, safe='')

    @classmethod
    def backend_path(cls, service, address, port):
        return '%s/backends/%s' % (cls.service_path(service), quote(endpoint(address, port), safe=':[]'))


def dry_run_query(module):
    return {'dryRun': 'true'} if module.check_mode else None


def change_result(answer):
    """The module result of a change answer: changed is the API's, the diff is the API's."""
    answer = answer or {}
    lines = [d.get('text', '') for d in answer.get('diff', [])]
    result = dict(
        changed=bool(answer.get('changed')),
        revision=answer.get('revision'),
        dry_run=bool(answer.get('dryRun')),
        api_diff=answer.get('diff', []),
        plan=answer.get('plan', []),
    )
    if lines:
        result['diff'] = dict(prepared='\n'.join(lines) + '\n')
    return result


def run_module(module, body):
    """Runs body(client) -> result dict, turning FulcrumApiError into fail_json."""
    client = FulcrumClient(module)
    try:
        result = body(client)
    except FulcrumApiError as e:
        module.fail_json(**e.fail_kwargs())
    module.exit_json(**result)
