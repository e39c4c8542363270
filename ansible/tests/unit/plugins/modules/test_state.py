# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.fulcrum.lb.plugins.modules import state
from ansible_collections.fulcrum.lb.tests.unit.conftest import Reply, change

DESIRED = {'services': [{'name': 'web', 'address': '192.0.2.10', 'port': 80}], 'vrrp': []}


def test_puts_the_whole_state_guarded_by_its_revision(api, run_module):
    api.on('GET', '/v1/state', Reply(200, {'revision': 9, 'state': {}}, etag=9))
    api.on('PUT', '/v1/state', Reply(200, change(revision=10)))
    failed, r = run_module(state, dict(url=api.url, state=dict(DESIRED, agent={'stateDir': '/x'})), diff=True)
    assert not failed, r
    put = api.writes()[0]
    assert put['body'] == DESIRED and put['headers']['if-match'] == '"9"'
    assert (r['changed'], r['revision'], r['previous_revision']) == (True, 10, 9)
    assert r['diff']['prepared'] == '~ service web\n'


def test_check_mode(api, run_module):
    api.on('GET', '/v1/state', Reply(200, {'revision': 9}, etag=9))
    api.on('PUT', '/v1/state', Reply(200, change(revision=9, dry_run=True)))
    failed, r = run_module(state, dict(url=api.url, state=DESIRED), check_mode=True)
    assert not failed and r['changed'] and r['revision'] == 9
    assert api.writes()[0]['query'] == {'dryRun': 'true'}


def test_src_file_without_its_agent_section(api, run_module, tmp_path):
    f = tmp_path / 'config.yaml'
    f.write_text('agent: { stateDir: /var/lib/x }\nservices:\n  - { name: web, address: 192.0.2.10, port: 80 }\nvrrp: []\n')
    api.on('GET', '/v1/state', Reply(200, {'revision': 2}, etag=2))
    api.on('PUT', '/v1/state', Reply(200, change(changed=False, revision=2)))
    failed, r = run_module(state, dict(url=api.url, src=str(f)))
    assert not failed and r['changed'] is False
    assert api.writes()[0]['body'] == DESIRED


def test_unreadable_src(api, run_module, tmp_path):
    failed, r = run_module(state, dict(url=api.url, src=str(tmp_path / 'missing.yaml')))
    assert failed and 'cannot read' in r['msg'] and api.requests == []


def test_state_and_src_are_exclusive(api, run_module, tmp_path):
    failed, r = run_module(state, dict(url=api.url, src='/x', state=DESIRED))
    assert failed and 'mutually exclusive' in r['msg']


def test_invalid_state_fails_with_the_apis_code(api, run_module):
    api.on('GET', '/v1/state', Reply(200, {'revision': 2}, etag=2))
    api.on('PUT', '/v1/state', Reply(400, {'code': 'INVALID_CONFIG', 'message': 'invalid desired state:\nservices[1].address: duplicate VIP'}))
    failed, r = run_module(state, dict(url=api.url, state=DESIRED))
    assert failed and r['code'] == 'INVALID_CONFIG' and 'services[1].address' in r['msg']
