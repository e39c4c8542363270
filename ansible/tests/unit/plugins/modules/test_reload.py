# -*- coding: utf-8 -*-
# Apache License 2.0 (see the Fulcrum repository)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.fulcrum.lb.plugins.modules import reload
from ansible_collections.fulcrum.lb.tests.unit.conftest import Reply, change


def test_reload_reports_the_apis_change(api, run_module):
    api.on('POST', '/v1/reload', Reply(200, {'changed': True, 'revision': 8, 'diff': [{'op': '~', 'subject': 'web', 'text': '~ weight'}]}))
    failed, r = run_module(reload, dict(url=api.url, token='admin-token-0123456789'), diff=True)
    assert not failed, r
    assert (r['changed'], r['revision'], r['diff']['prepared']) == (True, 8, '~ weight\n')
    assert api.writes()[0]['headers']['authorization'] == 'Bearer admin-token-0123456789'


def test_unchanged(api, run_module):
    api.on('POST', '/v1/reload', Reply(200, change(changed=False, revision=8)))
    failed, r = run_module(reload, dict(url=api.url))
    assert not failed and r['changed'] is False


def test_a_refused_file_fails_with_the_apis_error(api, run_module):
    api.on('POST', '/v1/reload', Reply(400, {'code': 'INVALID_CONFIG', 'message': '/etc/fulcrum/config.yaml: invalid config:\nservices[0].port: Too big'}))
    failed, r = run_module(reload, dict(url=api.url))
    assert failed and r['code'] == 'INVALID_CONFIG' and 'services[0].port' in r['msg']


def test_check_mode_is_the_apis_dry_run(api, run_module):
    api.on('POST', '/v1/reload', Reply(200, change(changed=True, revision=8, dry_run=True)))
    failed, r = run_module(reload, dict(url=api.url), check_mode=True)
    assert not failed and r['changed'] is True and r['dry_run'] is True
    assert api.writes()[0]['query'] == {'dryRun': 'true'}


def test_settings_that_need_a_restart_are_named_and_warned(api, run_module):
    api.on('POST', '/v1/reload', Reply(200, dict(change(changed=False, revision=8), restartNeeded=['agent.api'])))
    failed, r = run_module(reload, dict(url=api.url))
    assert not failed and r['restart_needed'] == ['agent.api']
    assert any('agent.api' in w for w in r['warnings'])
