# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.fulcrum.lb.plugins.modules import vrrp
from ansible_collections.fulcrum.lb.tests.unit.conftest import Reply


def inst(state, maintenance, master=None):
    runtime = {'state': state, 'priority': 150, 'maintenance': maintenance}
    if master:
        runtime['masterAddress'] = master
    return {'revision': 3, 'instances': [{'spec': {'name': 'vip'}, 'runtime': runtime}]}


def answer(changed, state, maintenance):
    return {'changed': changed, 'instances': [{'name': 'vip', 'state': state, 'maintenance': maintenance}]}


def test_maintenance_on_waits_for_the_hand_over(api, run_module):
    api.on('GET', '/v1/vrrp', Reply(200, inst('master', False)), Reply(200, inst('master', True)),
           Reply(200, inst('backup', True)), Reply(200, inst('backup', True, master='10.9.0.2')))
    api.on('POST', '/v1/vrrp/maintenance', Reply(200, answer(True, 'backup', True)))
    failed, r = run_module(vrrp, dict(url=api.url, maintenance=True, poll_interval=0.01), diff=True)
    assert not failed, r
    assert api.writes()[0]['body'] == {'enabled': True}
    assert r['changed'] is True
    assert r['instances'] == [{'name': 'vip', 'state': 'backup', 'maintenance': True, 'masterAddress': '10.9.0.2'}]
    assert r['diff']['prepared'] == '~ vrrp vip: maintenance false -> true\n'
    assert len([x for x in api.requests if x['path'] == '/v1/vrrp']) == 4


def test_without_require_peer_backup_is_enough(api, run_module):
    api.on('GET', '/v1/vrrp', Reply(200, inst('master', False)), Reply(200, inst('backup', True)))
    api.on('POST', '/v1/vrrp/maintenance', Reply(200, answer(True, 'backup', True)))
    failed, r = run_module(vrrp, dict(url=api.url, maintenance=True, require_peer=False, poll_interval=0.01))
    assert not failed and r['instances'][0]['state'] == 'backup'


def test_hand_over_timeout_names_the_instance(api, run_module):
    api.on('GET', '/v1/vrrp', Reply(200, inst('master', True)))
    api.on('POST', '/v1/vrrp/maintenance', Reply(200, answer(True, 'master', True)))
    failed, r = run_module(vrrp, dict(url=api.url, maintenance=True, wait_timeout=0, poll_interval=0.01))
    assert failed and 'hand-over not done' in r['msg'] and 'vip (master, in maintenance)' in r['msg']


def test_check_mode_is_a_dry_run_without_wait(api, run_module):
    api.on('GET', '/v1/vrrp', Reply(200, inst('master', False)))
    api.on('POST', '/v1/vrrp/maintenance', Reply(200, answer(True, 'master', False)))
    failed, r = run_module(vrrp, dict(url=api.url, maintenance=True), check_mode=True)
    assert not failed and r['changed'] is True and 'waited' not in r
    assert api.writes()[0]['body'] == {'enabled': True, 'dryRun': True}


def test_maintenance_off_unchanged(api, run_module):
    api.on('GET', '/v1/vrrp', Reply(200, inst('master', False)))
    api.on('POST', '/v1/vrrp/maintenance', Reply(200, answer(False, 'master', False)))
    failed, r = run_module(vrrp, dict(url=api.url, maintenance=False, poll_interval=0.01), diff=True)
    assert not failed and r['changed'] is False and 'diff' not in r


def test_an_agent_without_the_maintenance_api(api, run_module):
    api.on('GET', '/v1/vrrp', Reply(200, inst('master', False)))
    failed, r = run_module(vrrp, dict(url=api.url, maintenance=True))
    assert failed and r['http_status'] == 404 and r['code'] == 'NOT_FOUND'
