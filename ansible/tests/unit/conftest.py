# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
"""
Fixtures of the unit tests: a scripted HTTP server on loopback standing in for the agent's API
(each route answers what the test told it to and records every request), and a runner that
executes a module's main() with arguments as Ansible would and returns its JSON result.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import ssl
import threading

import pytest

from ansible.module_utils.common.text.converters import to_bytes
from ansible.module_utils.six.moves import BaseHTTPServer
from ansible.module_utils.six.moves.urllib.parse import urlsplit, parse_qsl
from ansible.module_utils import basic


class Reply(object):
    def __init__(self, status=200, body=None, etag=None):
        self.status = status
        self.body = body
        self.etag = etag


class ScriptedApi(object):
    """
    routes: {(METHOD, path): [Reply, ...] or callable(request) -> Reply}. A list is consumed
    in order, its last reply repeats. A request nobody scripted is answered 404 NOT_FOUND and
    recorded, so a test sees it.
    """

    def __init__(self, tls=None):
        self.routes = {}
        self.requests = []
        api = self

        class Handler(BaseHTTPServer.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                req = dict(method=self.command, path=parts.path, query=dict(parse_qsl(parts.query)),
                           headers=dict((k.lower(), v) for k, v in self.headers.items()),
                           body=json.loads(raw) if raw else None)
                api.requests.append(req)
                route = api.routes.get((self.command, parts.path))
                if route is None:
                    reply = Reply(404, {'code': 'NOT_FOUND', 'message': 'unscripted %s %s' % (self.command, parts.path)})
                elif callable(route):
                    reply = route(req)
                else:
                    reply = route[0] if len(route) == 1 else route.pop(0)
                data = b'' if reply.body is None else to_bytes(json.dumps(reply.body))
                self.send_response(reply.status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                if reply.etag is not None:
                    self.send_header('ETag', '"%s"' % reply.etag)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.server = BaseHTTPServer.HTTPServer(('127.0.0.1', 0), Handler)
        scheme = 'http'
        if tls:
            # tls = (cert, key): a self-signed certificate for 127.0.0.1 (its own CA)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = 'https'
        self.url = '%s://127.0.0.1:%s' % (scheme, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.daemon = True
        self.thread.start()

    def on(self, method, path, *replies):
        self.routes[(method, path)] = list(replies)

    def handle(self, method, path, fn):
        self.routes[(method, path)] = fn

    def writes(self):
        return [r for r in self.requests if r['method'] != 'GET']

    def close(self):
        self.server.shutdown()
        self.server.server_close()


FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
TEST_CERT = os.path.join(FIXTURES, 'cert.pem')


@pytest.fixture
def api():
    a = ScriptedApi()
    yield a
    a.close()


@pytest.fixture
def tls_api():
    a = ScriptedApi(tls=(TEST_CERT, os.path.join(FIXTURES, 'key.pem')))
    yield a
    a.close()


def change(changed=True, revision=4, dry_run=False, diff=None):
    return dict(revision=revision, changed=changed, applied=changed and not dry_run, dryRun=dry_run,
                diff=diff if diff is not None else ([{'op': '~', 'subject': 'web', 'text': '~ service web'}] if changed else []),
                plan=[])


class ModuleExit(Exception):
    pass


@pytest.fixture
def run_module(monkeypatch, capsys):
    """run_module(module, args, check_mode=False, diff=False) -> (failed, result dict)."""

    def run(module, args, check_mode=False, diff=False):
        a = dict(args)
        a['_ansible_check_mode'] = check_mode
        a['_ansible_diff'] = diff
        a['_ansible_remote_tmp'] = '/tmp'
        a['_ansible_keep_remote_files'] = False
        monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': a})))
        monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy', raising=False)
        with pytest.raises(SystemExit) as e:
            module.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        return e.value.code != 0 or result.get('failed', False), result

    return run
