# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.fulcrum.lb.plugins.modules import service
from ansible_collections.fulcrum.lb.tests.unit.conftest import Reply, change

SPEC = {'address': '192.0.2.10', 'port': 80, 'backends': [{'address': '10.0.1.1', 'port': 8080}]}


def script(api, put=None):
    api.on('GET', '/v1/status', Reply(200, {'revision': 3}, etag=3))
    api.on('PUT', '/v1/services/web', Reply(200, put or change(revision=4)))
    api.on('GET', '/v1/services/web', Reply(200, dict(SPEC, name='web'), etag=4))


def test_present_puts_the_whole_service_with_if_match(api, run_module):
    script(api)
    failed, r = run_module(service, dict(url=api.url, token='t' * 20, name='web', spec=SPEC), diff=True)
    assert not failed, r
    put = api.writes()[0]
    assert put['body'] == dict(SPEC, name='web')
    assert put['headers']['if-match'] == '"3"' and put['query'] == {}
    assert r['changed'] is True and r['revision'] == 4
    assert r['diff'] == {'prepared': '~ service web\n'}
    assert r['service']['name'] == 'web'


def test_check_mode_is_the_apis_dry_run(api, run_module):
    script(api, put=change(revision=3, dry_run=True))
    failed, r = run_module(service, dict(url=api.url, name='web', spec=SPEC), check_mode=True)
    assert not failed
    assert api.writes()[0]['query'] == {'dryRun': 'true'}
    assert r['changed'] is True and r['dry_run'] is True and r['revision'] == 3


def test_unchanged_is_what_the_api_says(api, run_module):
    script(api, put=change(changed=False, revision=3))
    failed, r = run_module(service, dict(url=api.url, name='web', spec=SPEC))
    assert not failed and r['changed'] is False and 'diff' not in r


def test_absent_deletes(api, run_module):
    api.on('GET', '/v1/status', Reply(200, {}, etag=3))
    api.on('DELETE', '/v1/services/web', Reply(200, change(changed=False, revision=3)))
    failed, r = run_module(service, dict(url=api.url, name='web', state='absent'))
    assert not failed and r['changed'] is False and 'service' not in r
    assert [w['method'] for w in api.writes()] == ['DELETE']


def test_invalid_spec_fails_with_the_apis_message(api, run_module):
    api.on('GET', '/v1/status', Reply(200, {}, etag=3))
    api.on('PUT', '/v1/services/web', Reply(400, {'code': 'INVALID_REQUEST', 'message': 'invalid body:\nport: Too big: expected number to be <=65535'}))
    failed, r = run_module(service, dict(url=api.url, name='web', spec=dict(SPEC, port=70000)))
    assert failed
    assert r['code'] == 'INVALID_REQUEST' and r['http_status'] == 400
    assert 'port: Too big' in r['msg']


def test_spec_name_must_match(api, run_module):
    script(api)
    failed, r = run_module(service, dict(url=api.url, name='web', spec=dict(SPEC, name='other')))
    assert failed and 'differs' in r['msg'] and api.writes() == []


def test_present_needs_spec(api, run_module):
    failed, r = run_module(service, dict(url=api.url, name='web'))
    assert failed and 'spec' in r['msg']


def test_url_and_token_from_the_environment(api, run_module, monkeypatch):
    script(api)
    monkeypatch.setenv('FULCRUM_URL', api.url)
    monkeypatch.setenv('FULCRUM_TOKEN', 'env-token-0123456789')
    failed, r = run_module(service, dict(name='web', spec=SPEC))
    assert not failed, r
    assert api.requests[0]['headers']['authorization'] == 'Bearer env-token-0123456789'
    assert 'env-token-0123456789' not in repr(r)
