# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.fulcrum.lb.plugins.modules import info
from ansible_collections.fulcrum.lb.tests.unit.conftest import Reply


def script(api):
    api.on('GET', '/v1/services', Reply(200, {'revision': 4, 'services': [{'name': 'web'}]}, etag=4))
    api.on('GET', '/v1/services/web', Reply(200, {'name': 'web'}, etag=4))
    api.on('GET', '/v1/status', Reply(200, {'revision': 4, 'ready': True}, etag=4))
    api.on('GET', '/v1/vrrp', Reply(200, {'revision': 4, 'instances': [{'spec': {'name': 'vip'}, 'runtime': {'state': 'master'}}]}, etag=4))
    api.on('GET', '/v1/drains', Reply(200, {'drains': []}))
    api.on('GET', '/v1/state', Reply(200, {'revision': 4, 'state': {'services': []}}, etag=4))


def test_reads_everything_and_changes_nothing(api, run_module):
    script(api)
    failed, r = run_module(info, dict(url=api.url, gather=['services', 'status', 'vrrp', 'drains', 'state']), check_mode=True)
    assert not failed, r
    assert r['changed'] is False and r['revision'] == 4
    assert r['services'] == [{'name': 'web'}] and r['status']['ready'] is True
    assert r['vrrp'][0]['runtime']['state'] == 'master' and r['drains'] == [] and r['state'] == {'services': []}
    assert all(x['method'] == 'GET' for x in api.requests)


def test_one_service(api, run_module):
    script(api)
    failed, r = run_module(info, dict(url=api.url, gather=['services'], service='web'))
    assert not failed and r['services'] == [{'name': 'web'}]
    assert [x['path'] for x in api.requests] == ['/v1/services/web']


def test_unauthorized(api, run_module):
    api.on('GET', '/v1/drains', Reply(401, {'code': 'UNAUTHORIZED', 'message': 'no or unknown bearer token'}))
    failed, r = run_module(info, dict(url=api.url, token='wrong-token-0123456789', gather=['drains']))
    assert failed and r['code'] == 'UNAUTHORIZED' and r['http_status'] == 401
    assert 'wrong-token-0123456789' not in repr(r)
