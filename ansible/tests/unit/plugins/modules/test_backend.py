# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.fulcrum.lb.plugins.modules import backend
from ansible_collections.fulcrum.lb.tests.unit.conftest import Reply, change

B = '/v1/services/web/backends/10.0.1.2:8080'


def svc(*backends):
    return {'name': 'web', 'address': '192.0.2.10', 'port': 80, 'backends': list(backends)}


def args(api, **kw):
    a = dict(url=api.url, service='web', address='10.0.1.2', port=8080, poll_interval=0.01)
    a.update(kw)
    return a


def test_enabled_existing_backend_patches_the_weight(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2', 'port': 8080, 'weight': 1}), etag=5))
    api.on('PATCH', B, Reply(200, change(revision=6)))
    failed, r = run_module(backend, args(api, weight=3), diff=True)
    assert not failed, r
    w = api.writes()
    assert [(x['method'], x['body'], x['headers']['if-match']) for x in w] == [('PATCH', {'weight': 3}, '"5"')]
    assert r['changed'] and r['revision'] == 6 and r['diff']['prepared']


def test_enabled_missing_backend_is_put_back(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc(), etag=5))
    api.on('PUT', B, Reply(201, change(revision=6)))
    failed, r = run_module(backend, args(api, weight=2, spec={'upperThreshold': 100}))
    assert not failed, r
    assert api.writes()[0]['body'] == {'address': '10.0.1.2', 'port': 8080, 'weight': 2, 'upperThreshold': 100}


def test_enabled_without_weight_and_present_changes_nothing(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2', 'port': 8080}), etag=5))
    api.on('GET', '/v1/status', Reply(200, {}, etag=5))
    failed, r = run_module(backend, args(api))
    assert not failed and r['changed'] is False and r['revision'] == 5 and api.writes() == []
    assert r['backend'] == {'address': '10.0.1.2', 'port': 8080}


def test_a_backend_without_port_takes_the_services(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2'}), etag=5))
    api.on('GET', '/v1/status', Reply(200, {}, etag=5))
    failed, r = run_module(backend, args(api, port=80))
    assert not failed and r['changed'] is False and api.writes() == []


def test_enabled_on_a_missing_service_fails_with_the_apis_error(api, run_module):
    api.on('GET', '/v1/services/web', Reply(404, {'code': 'NOT_FOUND', 'message': 'no service named web'}))
    failed, r = run_module(backend, args(api, weight=1))
    assert failed and r['code'] == 'NOT_FOUND' and 'no service named web' in r['msg']


def test_drain_and_wait_until_done(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2', 'port': 8080}), etag=5), Reply(200, svc(), etag=6))
    api.on('POST', B + '/drain', Reply(202, dict(change(revision=6), progress={'state': 'draining', 'activeConnections': 20})))
    progress = lambda n: {'state': 'draining' if n else 'done', 'service': 'web', 'backend': '10.0.1.2:8080', 'activeConnections': n}
    api.on('GET', B + '/drain', Reply(200, progress(20)), Reply(200, progress(7)), Reply(200, progress(0)))
    failed, r = run_module(backend, args(api, state='drained', wait=True))
    assert not failed, r
    assert r['changed'] and r['drain']['state'] == 'done' and r['waited'] >= 0
    polls = [x for x in api.requests if x['path'] == B + '/drain' and x['method'] == 'GET']
    assert len(polls) == 3
    assert 'backend' not in r


def test_drain_wait_times_out_with_the_connections_left(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2', 'port': 8080}), etag=5))
    api.on('POST', B + '/drain', Reply(202, change(revision=6)))
    api.on('GET', B + '/drain', Reply(200, {'state': 'draining', 'activeConnections': 4}))
    failed, r = run_module(backend, args(api, state='drained', wait=True, wait_timeout=0))
    assert failed and '4 active connections left' in r['msg'] and r['changed'] is True


def test_drain_in_check_mode_is_a_dry_run_and_does_not_wait(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2', 'port': 8080}), etag=5))
    api.on('POST', B + '/drain', Reply(200, change(revision=5, dry_run=True)))
    api.on('GET', B + '/drain', Reply(200, {'state': 'not-draining', 'activeConnections': 0}))
    failed, r = run_module(backend, args(api, state='drained', wait=True), check_mode=True)
    assert not failed and r['changed'] and r['dry_run']
    assert api.writes()[0]['query'] == {'dryRun': 'true'}
    assert 'waited' not in r


def test_drain_of_an_absent_backend_is_no_change(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc(), etag=5))
    api.on('GET', '/v1/status', Reply(200, {}, etag=5))
    api.on('GET', B + '/drain', Reply(404, {'code': 'NOT_FOUND', 'message': 'no drain known'}))
    failed, r = run_module(backend, args(api, state='drained', wait=True))
    assert not failed and r['changed'] is False and r['drain']['state'] == 'done' and api.writes() == []


def test_absent_deletes(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2', 'port': 8080}), etag=5))
    api.on('DELETE', B, Reply(200, change(revision=6)))
    api.on('GET', B + '/drain', Reply(200, {'state': 'done', 'activeConnections': 0}))
    failed, r = run_module(backend, args(api, state='absent'))
    assert not failed and [w['method'] for w in api.writes()] == ['DELETE'] and r['changed']


def test_412_rereads_and_retries_once(api, run_module):
    api.on('GET', '/v1/services/web', Reply(200, svc({'address': '10.0.1.2', 'port': 8080, 'weight': 1}), etag=5),
           Reply(200, svc({'address': '10.0.1.2', 'port': 8080, 'weight': 1}), etag=7))
    api.on('PATCH', B, Reply(412, {'code': 'PRECONDITION_FAILED', 'message': 'revision is 7'}), Reply(200, change(revision=8)))
    failed, r = run_module(backend, args(api, weight=3))
    assert not failed, r
    assert [w['headers']['if-match'] for w in api.writes()] == ['"5"', '"7"']
