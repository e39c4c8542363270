#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: info
short_description: Read a Fulcrum agent's services, status, VRRP state and drains
version_added: 0.1.0
description:
  - Reads from the agent's REST API and never changes anything (a C(read) token is enough).
author:
  - Fulcrum maintainers (@fulcrum)
extends_documentation_fragment:
  - fulcrum.lb.fulcrum
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  gather:
    description:
      - What to read. C(services) is C(GET /v1/services), C(status) C(GET /v1/status), C(vrrp)
        C(GET /v1/vrrp), C(drains) C(GET /v1/drains), C(state) C(GET /v1/state).
    type: list
    elements: str
    choices: [services, status, vrrp, drains, state]
    default: [services, status, vrrp, drains]
  service:
    description: With C(services), read only this service (C(GET /v1/services/{name})).
    type: str
'''

EXAMPLES = r'''
- name: Is the agent ready, and which node is VRRP master?
  fulcrum.lb.info:
    gather: [status, vrrp]
  register: lb

- ansible.builtin.debug:
    msg: "{{ lb.vrrp | map(attribute='runtime.state') | list }}"
'''

RETURN = r'''
changed:
  description: Always false.
  returned: always
  type: bool
revision:
  description: The desired state's revision.
  returned: always
  type: int
services:
  description: The services of the desired state (one service with I(service)).
  returned: when C(services) is gathered
  type: list
  elements: dict
status:
  description: The agent's status (dataplanes found and missing, revision, ready, last reconcile, health and VRRP).
  returned: when C(status) is gathered
  type: dict
vrrp:
  description: Every VRRP instance, each as C(spec) and this node's C(runtime) state.
  returned: when C(vrrp) is gathered
  type: list
  elements: dict
drains:
  description: Every backend being drained, with its active connections and deadline.
  returned: when C(drains) is gathered
  type: list
  elements: dict
state:
  description: The whole desired state (can be given back to M(fulcrum.lb.state) as it is).
  returned: when C(state) is gathered
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fulcrum.lb.plugins.module_utils.fulcrum import (
    FulcrumClient, merge_argument_spec, run_module,
)


def main():
    module = AnsibleModule(
        argument_spec=merge_argument_spec(dict(
            gather=dict(type='list', elements='str', choices=['services', 'status', 'vrrp', 'drains', 'state'],
                        default=['services', 'status', 'vrrp', 'drains']),
            service=dict(type='str'),
        )),
        supports_check_mode=True,
    )
    p = module.params

    def body(client):
        out = dict(changed=False)
        revision = None
        for what in p['gather']:
            if what == 'services':
                if p['service']:
                    _, svc, headers = client.get(FulcrumClient.service_path(p['service']))
                    out['services'] = [svc]
                else:
                    _, doc, headers = client.get('/v1/services')
                    out['services'] = doc['services']
            elif what == 'status':
                _, out['status'], headers = client.get('/v1/status')
            elif what == 'vrrp':
                _, doc, headers = client.get('/v1/vrrp')
                out['vrrp'] = doc['instances']
            elif what == 'drains':
                _, doc, headers = client.get('/v1/drains')
                out['drains'] = doc['drains']
                continue  # no ETag on this one
            else:
                _, doc, headers = client.get('/v1/state')
                out['state'] = doc['state']
            revision = client.etag(headers) if revision is None else revision
        if revision is None:
            _, _, headers = client.get('/v1/status')
            revision = client.etag(headers)
        out['revision'] = revision
        return out

    run_module(module, body)


if __name__ == '__main__':
    main()
