#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backend
short_description: Enable, re-weight, drain or remove one backend of a Fulcrum service
version_added: 0.1.0
description:
  - Manages one backend (real server) of a service through the agent's REST API.
  - C(enabled) makes sure the backend is in the service (C(PUT .../backends/{address}:{port}) when
    it is missing or I(spec) is given, C(PATCH) of the weight otherwise).
  - C(drained) starts a drain (C(POST .../drain)); the backend leaves the desired state, its
    established connections continue until they end or the agent's drain timeout. With I(wait) the
    module polls the drain status (C(GET .../drain)) until the drain is C(done).
  - C(absent) removes the backend (C(DELETE)); the dataplane drains its connections as for a drain.
  - Check mode sends C(dryRun=true); diff mode shows the API's diff; C(changed) is the API's.
notes:
  - On the XDP dataplane a drain is C(done) at once and its established flows are not kept today;
    C(weight=0) keeps them (no new flows) while the agent lacks this. See docs/ansible.md.
author:
  - Fulcrum maintainers (@fulcrum)
extends_documentation_fragment:
  - fulcrum.lb.fulcrum
attributes:
  check_mode:
    support: full
    description: The API's C(dryRun); a drain is not waited for.
  diff_mode:
    support: full
    description: The API's diff of the model.
options:
  service:
    description: Name of the service.
    type: str
    required: true
  address:
    description: Address of the backend (IPv4 or IPv6).
    type: str
    required: true
  port:
    description:
      - Port of the backend. Required, since the API names a backend by address and port (a backend
        given without a port in a spec takes the service's port).
    type: int
    required: true
  state:
    description: What the backend should be.
    type: str
    choices: [enabled, drained, absent]
    default: enabled
  weight:
    description:
      - Weight with I(state=enabled) (0 keeps it in the service but sends it no new connections).
      - A backend that is missing is added with this weight (or the API's default).
    type: int
  spec:
    description:
      - The rest of the backend (for example C(upperThreshold), C(lowerThreshold)); when given with
        I(state=enabled) the whole backend is replaced with C(PUT).
    type: dict
  wait:
    description: With I(state=drained) or I(state=absent), wait until the drain is done.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the drain; the module fails after that with the connections left.
    type: int
    default: 300
  poll_interval:
    description: Seconds between two reads of the drain status.
    type: float
    default: 1
'''

EXAMPLES = r'''
- name: Drain a backend and wait until its connections are gone
  fulcrum.lb.backend:
    service: web
    address: 10.0.1.2
    port: 8080
    state: drained
    wait: true
    wait_timeout: 600

- name: Bring it back with weight 2
  fulcrum.lb.backend:
    service: web
    address: 10.0.1.2
    port: 8080
    weight: 2
'''

RETURN = r'''
changed:
  description: Whether the API changed (or would change) the desired state.
  returned: always
  type: bool
revision:
  description: The revision after the call.
  returned: always
  type: int
dry_run:
  description: Whether this was a dry run (check mode).
  returned: always
  type: bool
api_diff:
  description: The API's diff.
  returned: always
  type: list
  elements: dict
plan:
  description: The kernel steps each dataplane took (or would take).
  returned: always
  type: list
  elements: dict
drain:
  description:
    - The drain status (C(draining), C(done) or C(not-draining)) with C(activeConnections), as the API
      reports it; after I(wait), the last one read.
  returned: with I(state=drained) or I(state=absent)
  type: dict
  sample: {"state": "done", "service": "web", "backend": "10.0.1.2:8080", "activeConnections": 0}
waited:
  description: Seconds spent waiting for the drain.
  returned: with I(wait)
  type: float
backend:
  description: The backend as the agent holds it after the call.
  returned: when it is in the service after the call
  type: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fulcrum.lb.plugins.module_utils.fulcrum import (
    FulcrumApiError, FulcrumClient, change_result, dry_run_query, merge_argument_spec, run_module,
)


def find_backend(service, address, port):
    for b in (service or {}).get('backends', []):
        if b.get('address') == address and b.get('port', service.get('port')) == port:
            return b
    return None


def main():
    module = AnsibleModule(
        argument_spec=merge_argument_spec(dict(
            service=dict(type='str', required=True),
            address=dict(type='str', required=True),
            port=dict(type='int', required=True),
            state=dict(type='str', choices=['enabled', 'drained', 'absent'], default='enabled'),
            weight=dict(type='int'),
            spec=dict(type='dict'),
            wait=dict(type='bool', default=False),
            wait_timeout=dict(type='int', default=300),
            poll_interval=dict(type='float', default=1),
        )),
        supports_check_mode=True,
    )
    p = module.params
    svc_path = FulcrumClient.service_path(p['service'])
    path = FulcrumClient.backend_path(p['service'], p['address'], p['port'])
    query = dry_run_query(module)

    def body(client):
        def read():
            status, svc, headers = client.request('GET', svc_path, ok=(200, 404))
            if status == 404:
                if p['state'] == 'enabled':
                    raise FulcrumApiError('GET', svc_path, 404, svc.get('code', 'NOT_FOUND') if svc else 'NOT_FOUND',
                                          svc.get('message', '') if svc else 'no service named %s' % p['service'])
                return None, None
            return client.etag(headers), svc

        def write(revision, svc):
            if svc is None:
                return None  # no service: its backends are absent and drained already
            current = find_backend(svc, p['address'], p['port'])
            if p['state'] == 'enabled':
                if current is None or p['spec'] is not None:
                    backend = dict(p['spec'] or {})
                    backend.update(address=p['address'], port=p['port'])
                    if p['weight'] is not None:
                        backend['weight'] = p['weight']
                    return client.request('PUT', path, body=backend, query=query, if_match=revision)[1]
                if p['weight'] is None:
                    return None
                return client.request('PATCH', path, body={'weight': p['weight']}, query=query, if_match=revision)[1]
            if p['state'] == 'drained':
                if current is None:
                    return None
                return client.request('POST', path + '/drain', query=query, if_match=revision)[1]
            return client.request('DELETE', path, query=query, if_match=revision)[1]

        answer = client.guarded(read, write)
        result = change_result(answer) if answer else dict(changed=False, dry_run=module.check_mode, api_diff=[], plan=[])
        if 'revision' not in result or result['revision'] is None:
            _, _, headers = client.get('/v1/status')
            result['revision'] = client.etag(headers)

        if p['state'] in ('drained', 'absent'):
            result['drain'] = drain_status(client, path, p)
            if p['wait'] and not module.check_mode:
                start = time.monotonic()
                while result['drain'].get('state') == 'draining':
                    if time.monotonic() - start >= p['wait_timeout']:
                        module.fail_json(msg='drain of %s:%s from %s not done after %ss: %s active connections left' % (
                            p['address'], p['port'], p['service'], p['wait_timeout'], result['drain'].get('activeConnections')),
                            **result)
                    time.sleep(p['poll_interval'])
                    result['drain'] = drain_status(client, path, p)
                result['waited'] = round(time.monotonic() - start, 3)

        status, svc, _ = client.request('GET', svc_path, ok=(200, 404))
        b = find_backend(svc, p['address'], p['port']) if status == 200 else None
        if b is not None:
            result['backend'] = b
        return result

    run_module(module, body)


def drain_status(client, path, p):
    """The API's drain status; a backend neither in the service nor drained since the agent started is done."""
    status, progress, _ = client.request('GET', path + '/drain', ok=(200, 404))
    if status == 404:
        return dict(state='done', service=p['service'], backend='%s:%s' % (p['address'], p['port']), activeConnections=0)
    return progress


if __name__ == '__main__':
    main()
