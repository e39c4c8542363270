#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: service
short_description: Create, replace or delete one Fulcrum service
version_added: 0.1.0
description:
  - Puts one service (a virtual server with its backends) into the desired state of a Fulcrum agent
    with C(PUT /v1/services/{name}), or deletes it with C(DELETE /v1/services/{name}).
  - The whole service is given; the agent validates it as the config file is validated and answers
    whether anything changed, so a re-run reports no change.
  - Check mode sends the same request with C(dryRun=true); diff mode shows the API's diff.
author:
  - Fulcrum maintainers (@fulcrum)
extends_documentation_fragment:
  - fulcrum.lb.fulcrum
attributes:
  check_mode:
    support: full
    description: The API's C(dryRun); nothing is applied, C(changed) says whether it would be.
  diff_mode:
    support: full
    description: The API's diff of the model (one line per change).
options:
  name:
    description: Name of the service.
    type: str
    required: true
  state:
    description:
      - C(present) creates or replaces the service with I(spec).
      - C(absent) deletes it (an absent service is no change).
    type: str
    choices: [present, absent]
    default: present
  spec:
    description:
      - The service as C(docs/model.md) describes it (address, port, protocol, dataplane, scheduler,
        forwarding, backends, health...). C(name) may be left out.
      - Required with I(state=present).
    type: dict
'''

EXAMPLES = r'''
- name: A web service on the XDP dataplane with two backends
  fulcrum.lb.service:
    url: http://127.0.0.1:9180
    token: "{{ fulcrum_admin_token }}"
    name: web
    spec:
      address: 192.0.2.10
      port: 80
      dataplane: xdp
      backends:
        - { address: 10.0.1.1, port: 8080 }
        - { address: 10.0.1.2, port: 8080 }

- name: Remove it
  fulcrum.lb.service:
    name: web
    state: absent
'''

RETURN = r'''
changed:
  description: Whether the API changed (or, in check mode, would change) the desired state.
  returned: always
  type: bool
revision:
  description: The desired state's revision after the call (unchanged in check mode).
  returned: always
  type: int
  sample: 7
dry_run:
  description: Whether this was a dry run (check mode).
  returned: always
  type: bool
api_diff:
  description: The API's diff, one entry per change of the model.
  returned: always
  type: list
  elements: dict
  sample: [{"op": "+", "subject": "web", "text": "+ service web tcp 192.0.2.10:80 on xdp (maglev)"}]
plan:
  description: The kernel steps each dataplane took (or would take).
  returned: always
  type: list
  elements: dict
service:
  description: The service as the agent holds it after the call (absent after a delete or a dry run that creates it).
  returned: when the service exists after the call
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fulcrum.lb.plugins.module_utils.fulcrum import (
    FulcrumClient, change_result, dry_run_query, merge_argument_spec, run_module,
)


def main():
    module = AnsibleModule(
        argument_spec=merge_argument_spec(dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            spec=dict(type='dict'),
        )),
        required_if=[('state', 'present', ['spec'])],
        supports_check_mode=True,
    )
    p = module.params
    path = FulcrumClient.service_path(p['name'])

    def body(client):
        def read():
            _, _, headers = client.get('/v1/status')
            return client.etag(headers), None

        if p['state'] == 'present':
            spec = dict(p['spec'])
            if spec.get('name', p['name']) != p['name']:
                module.fail_json(msg='spec.name "%s" differs from name "%s"' % (spec['name'], p['name']))
            spec['name'] = p['name']

            def write(revision, _):
                return client.request('PUT', path, body=spec, query=dry_run_query(module), if_match=revision)[1]
        else:
            def write(revision, _):
                return client.request('DELETE', path, query=dry_run_query(module), if_match=revision)[1]

        result = change_result(client.guarded(read, write))
        status, svc, _ = client.request('GET', path, ok=(200, 404))
        if status == 200:
            result['service'] = svc
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
