#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: vrrp
short_description: Put a node's VRRP instances into maintenance (planned hand-over) or end it
version_added: 0.1.0
description:
  - C(maintenance=true) calls C(POST /v1/vrrp/maintenance) with C(enabled=true); every VRRP instance
    of this node gives its VIPs up at once (priority 0, as on a planned stop) and stays backup.
    With I(wait), the module polls C(GET /v1/vrrp) until no instance here is master (and, with
    I(require_peer), each one has seen another node's advertisement as master).
  - C(maintenance=false) ends it; with I(wait) the module waits until no instance is in maintenance.
    Whether the node takes the VIPs back then depends on its priority and preemption.
  - Check mode sends C(dryRun=true) and does not wait; C(changed) is the API's.
author:
  - Fulcrum maintainers (@fulcrum)
extends_documentation_fragment:
  - fulcrum.lb.fulcrum
attributes:
  check_mode:
    support: full
    description: The API's C(dryRun).
  diff_mode:
    support: full
    description: One line per instance whose maintenance would change.
options:
  maintenance:
    description: Whether this node's VRRP instances are in maintenance.
    type: bool
    required: true
  wait:
    description: Wait until the hand-over (or its end) is seen in C(GET /v1/vrrp).
    type: bool
    default: true
  require_peer:
    description:
      - With I(maintenance=true) and I(wait), also wait until every instance knows another master
        (C(runtime.masterAddress)), so that the VIPs are held elsewhere before the play goes on.
      - The agent records another master only from an advertisement it accepts; a node in
        maintenance whose priority is higher than its successor's (and which preempts) discards the
        successor's advertisements, so there the wait runs into I(wait_timeout). Check the successor
        instead (as C(rolling-upgrade.yml) does, with M(fulcrum.lb.info) delegated to it).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait; the module fails after that naming the instances not there yet.
    type: int
    default: 30
  poll_interval:
    description: Seconds between two reads.
    type: float
    default: 0.2
'''

EXAMPLES = r'''
- name: Hand the VIPs over before upgrading this node
  fulcrum.lb.vrrp:
    maintenance: true
    wait_timeout: 20

- name: Back in service
  fulcrum.lb.vrrp:
    maintenance: false
'''

RETURN = r'''
changed:
  description: Whether the API changed (or would change) the maintenance of an instance.
  returned: always
  type: bool
instances:
  description: Each instance with its C(name), C(state) (master, backup, fault, init) and C(maintenance), after the wait.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "vip", "state": "backup", "maintenance": true, "masterAddress": "10.9.0.2"}]
waited:
  description: Seconds spent waiting.
  returned: with I(wait) and not in check mode
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fulcrum.lb.plugins.module_utils.fulcrum import (
    FulcrumApiError, merge_argument_spec, run_module,
)


def instances_of(doc):
    """
    Flat {name, state, maintenance, masterAddress} per instance of GET /v1/vrrp, which gives each
    instance as {spec, runtime}; state and maintenance are read from runtime, or from the instance
    itself (the maintenance contract names them per instance).
    """
    out = []
    for i in (doc or {}).get('instances', []):
        spec = i.get('spec') or {}
        runtime = i.get('runtime') or {}
        out.append(dict(
            name=i.get('name', spec.get('name')),
            state=runtime.get('state', i.get('state')),
            maintenance=bool(runtime.get('maintenance', i.get('maintenance', False))),
            masterAddress=runtime.get('masterAddress', i.get('masterAddress')),
        ))
    return out


def pending(instances, maintenance, require_peer):
    """Names of the instances not yet where the wait wants them."""
    out = []
    for i in instances:
        if maintenance:
            if not i['maintenance'] or i['state'] == 'master' or (require_peer and not i.get('masterAddress')):
                out.append(i['name'])
        elif i['maintenance']:
            out.append(i['name'])
    return out


def main():
    module = AnsibleModule(
        argument_spec=merge_argument_spec(dict(
            maintenance=dict(type='bool', required=True),
            wait=dict(type='bool', default=True),
            require_peer=dict(type='bool', default=True),
            wait_timeout=dict(type='int', default=30),
            poll_interval=dict(type='float', default=0.2),
        )),
        supports_check_mode=True,
    )
    p = module.params

    def body(client):
        before = instances_of(client.get('/v1/vrrp')[1])
        req = {'enabled': p['maintenance']}
        if module.check_mode:
            req['dryRun'] = True
        _, answer, _ = client.request('POST', '/v1/vrrp/maintenance', body=req)
        if not isinstance(answer, dict) or 'changed' not in answer:
            raise FulcrumApiError('POST', '/v1/vrrp/maintenance', 200, 'BAD_RESPONSE', 'no "changed" in the answer: %r' % (answer,))
        result = dict(changed=bool(answer['changed']), instances=answer.get('instances', before))
        flips = ['%s vrrp %s: maintenance %s -> %s' % ('~', i['name'], str(i['maintenance']).lower(), str(p['maintenance']).lower())
                 for i in before if i['maintenance'] != p['maintenance']]
        if result['changed'] and flips:
            result['diff'] = dict(prepared='\n'.join(flips) + '\n')
        if p['wait'] and not module.check_mode:
            start = time.monotonic()
            while True:
                now = instances_of(client.get('/v1/vrrp')[1])
                left = pending(now, p['maintenance'], p['require_peer'])
                if not left:
                    break
                if time.monotonic() - start >= p['wait_timeout']:
                    module.fail_json(msg='VRRP %s not done after %ss: %s' % (
                        'hand-over' if p['maintenance'] else 'end of maintenance', p['wait_timeout'],
                        ', '.join('%s (%s%s)' % (i['name'], i['state'], ', in maintenance' if i['maintenance'] else '')
                                  for i in now if i['name'] in left)), changed=result['changed'], instances=now)
                time.sleep(p['poll_interval'])
            result['instances'] = now
            result['waited'] = round(time.monotonic() - start, 3)
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
