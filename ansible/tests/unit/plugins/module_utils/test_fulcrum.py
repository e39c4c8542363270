# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket

import pytest

from ansible.module_utils.six.moves.urllib.error import URLError
from ansible.module_utils.urls import open_url
from ansible_collections.fulcrum.lb.plugins.module_utils.fulcrum import (
    FulcrumApiError, FulcrumClient, change_result, endpoint,
)
from ansible_collections.fulcrum.lb.tests.unit.conftest import Reply, TEST_CERT, change

TOKEN = 'secret-admin-token-0123456789'


class FakeModule(object):
    check_mode = False

    def __init__(self, **params):
        base = dict(url=None, token=TOKEN, validate_certs=True, ca_path=None, timeout=5, restart_timeout=30)
        base.update(params)
        self.params = base


class FakeTime(object):
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def client(api, **params):
    params.setdefault('url', api.url)
    return FulcrumClient(FakeModule(**params))


def test_bearer_token_and_json(api):
    api.on('GET', '/v1/status', Reply(200, {'revision': 3, 'ready': True}, etag=3))
    status, body, headers = client(api).get('/v1/status')
    assert status == 200 and body['revision'] == 3
    assert FulcrumClient.etag(headers) == 3
    assert api.requests[0]['headers']['authorization'] == 'Bearer ' + TOKEN


def test_no_token_no_header(api):
    api.on('GET', '/v1/status', Reply(200, {}))
    client(api, token=None).get('/v1/status')
    assert 'authorization' not in api.requests[0]['headers']


def test_api_error_carries_code_and_message_never_the_token(api):
    api.on('PUT', '/v1/services/web', Reply(403, {'code': 'FORBIDDEN', 'message': 'token "grafana" has role read; this needs admin'}))
    with pytest.raises(FulcrumApiError) as e:
        client(api).request('PUT', '/v1/services/web', body={'name': 'web'})
    err = e.value
    assert (err.status, err.code) == (403, 'FORBIDDEN')
    assert err.text() == 'fulcrum API PUT /v1/services/web: HTTP 403 FORBIDDEN: token "grafana" has role read; this needs admin'
    kw = err.fail_kwargs()
    assert kw['code'] == 'FORBIDDEN' and kw['api_message'].startswith('token "grafana"')
    assert TOKEN not in repr(kw)


def test_error_details_are_kept(api):
    details = [{'in': 'body', 'path': ['port'], 'message': 'Too big'}]
    api.on('PUT', '/v1/services/web', Reply(400, {'code': 'INVALID_REQUEST', 'message': 'invalid body:\nport: Too big', 'details': details}))
    with pytest.raises(FulcrumApiError) as e:
        client(api).request('PUT', '/v1/services/web', body={})
    assert e.value.fail_kwargs()['details'] == details


def test_non_json_error_body(api):
    api.handle('GET', '/v1/status', lambda req: Reply(502, None))
    with pytest.raises(FulcrumApiError) as e:
        client(api).get('/v1/status')
    assert e.value.code == 'HTTP_502'


def test_guarded_write_retries_once_on_412_with_a_fresh_etag(api):
    api.on('GET', '/v1/state', Reply(200, {'revision': 5}, etag=5), Reply(200, {'revision': 6}, etag=6))
    api.on('PUT', '/v1/state', Reply(412, {'code': 'PRECONDITION_FAILED', 'message': 'If-Match 5 is not the current revision 6'}),
           Reply(200, change(revision=7)))
    c = client(api)

    def read():
        _, body, headers = c.get('/v1/state')
        return c.etag(headers), body

    answer = c.guarded(read, lambda rev, cur: c.request('PUT', '/v1/state', body={}, if_match=rev)[1])
    assert answer['revision'] == 7
    puts = [r for r in api.requests if r['method'] == 'PUT']
    assert [p['headers']['if-match'] for p in puts] == ['"5"', '"6"']


def test_guarded_write_gives_up_after_one_retry(api):
    api.on('GET', '/v1/state', Reply(200, {}, etag=5))
    api.on('PUT', '/v1/state', Reply(412, {'code': 'PRECONDITION_FAILED', 'message': 'moved'}))
    c = client(api)
    with pytest.raises(FulcrumApiError) as e:
        c.guarded(lambda: (c.etag(c.get('/v1/state')[2]), None),
                  lambda rev, cur: c.request('PUT', '/v1/state', body={}, if_match=rev))
    assert e.value.code == 'PRECONDITION_FAILED'
    assert len([r for r in api.requests if r['method'] == 'PUT']) == 2


def closed_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused_is_retried_until_restart_timeout():
    t = FakeTime()
    c = FulcrumClient(FakeModule(url='http://127.0.0.1:%s' % closed_port(), restart_timeout=5), sleep=t.sleep, clock=t.clock)
    with pytest.raises(FulcrumApiError) as e:
        c.get('/v1/status')
    assert e.value.code == 'UNREACHABLE' and e.value.status is None
    assert 'retried for 5s' in e.value.message
    assert 1 < len(t.sleeps) < 20
    assert sum(t.sleeps) <= 5


def test_restart_timeout_zero_fails_at_once():
    t = FakeTime()
    c = FulcrumClient(FakeModule(url='http://127.0.0.1:%s' % closed_port(), restart_timeout=0), sleep=t.sleep, clock=t.clock)
    with pytest.raises(FulcrumApiError):
        c.get('/v1/status')
    assert t.sleeps == []


def test_agent_back_after_a_restart(api):
    """Refused twice (the agent restarting), then the real answer."""
    t = FakeTime()
    calls = []

    def opener(url, **kw):
        calls.append(url)
        if len(calls) <= 2:
            raise URLError(ConnectionRefusedError(111, 'Connection refused'))
        return open_url(url, **kw)

    api.on('GET', '/v1/status', Reply(200, {'ready': True}, etag=1))
    c = FulcrumClient(FakeModule(url=api.url), opener=opener, sleep=t.sleep, clock=t.clock)
    assert c.get('/v1/status')[1] == {'ready': True}
    assert len(calls) == 3 and len(t.sleeps) == 2


def test_other_errors_are_not_retried():
    t = FakeTime()
    calls = []

    def opener(url, **kw):
        calls.append(url)
        raise URLError(socket.gaierror(-2, 'Name or service not known'))

    c = FulcrumClient(FakeModule(url='http://nowhere.invalid'), opener=opener, sleep=t.sleep, clock=t.clock)
    with pytest.raises(FulcrumApiError) as e:
        c.get('/v1/status')
    assert len(calls) == 1 and 'Name or service not known' in e.value.message


def test_tls_options_reach_open_url():
    seen = {}

    def opener(url, **kw):
        seen.update(kw)
        raise URLError(ConnectionRefusedError(111, 'refused'))

    c = FulcrumClient(FakeModule(url='https://lb1:9180', ca_path='/etc/fulcrum/ca.pem', validate_certs=False, timeout=7,
                                 restart_timeout=0), opener=opener)
    with pytest.raises(FulcrumApiError):
        c.get('/v1/status')
    assert (seen['ca_path'], seen['validate_certs'], seen['timeout']) == ('/etc/fulcrum/ca.pem', False, 7)


def test_etag_forms():
    assert FulcrumClient.etag({'etag': 'W/"12"'}) == 12
    assert FulcrumClient.etag({'etag': '"3"'}) == 3
    assert FulcrumClient.etag({}) is None
    assert FulcrumClient.etag({'etag': '"abc"'}) is None


def test_paths_and_endpoints():
    assert endpoint('10.0.0.1', 80) == '10.0.0.1:80'
    assert endpoint('2001:db8::2', 80) == '[2001:db8::2]:80'
    assert FulcrumClient.backend_path('web 1', '2001:db8::2', 80) == '/v1/services/web%201/backends/[2001:db8::2]:80'


def test_change_result_is_the_apis():
    r = change_result(change(changed=True, revision=9, diff=[{'op': '+', 'subject': 'a', 'text': '+ service a'},
                                                          {'op': '-', 'subject': 'b', 'text': '- service b'}]))
    assert r['changed'] is True and r['revision'] == 9
    assert r['diff'] == {'prepared': '+ service a\n- service b\n'}
    r = change_result(change(changed=False))
    assert r['changed'] is False and 'diff' not in r


def test_tls_with_the_agents_ca(tls_api):
    tls_api.on('GET', '/v1/status', Reply(200, {'ready': True}, etag=2))
    c = client(tls_api, ca_path=TEST_CERT)
    assert c.get('/v1/status')[1] == {'ready': True}


def test_tls_without_the_ca_fails_at_once_naming_the_certificate(tls_api):
    tls_api.on('GET', '/v1/status', Reply(200, {}))
    t = FakeTime()
    c = FulcrumClient(FakeModule(url=tls_api.url), sleep=t.sleep, clock=t.clock)
    with pytest.raises(FulcrumApiError) as e:
        c.get('/v1/status')
    assert e.value.code == 'UNREACHABLE' and 'CERTIFICATE_VERIFY_FAILED' in e.value.message
    assert t.sleeps == [], 'a certificate error is not retried'
    assert tls_api.requests == []


def test_tls_validate_certs_false(tls_api):
    tls_api.on('GET', '/v1/status', Reply(200, {'ready': True}))
    assert client(tls_api, validate_certs=False).get('/v1/status')[1] == {'ready': True}
