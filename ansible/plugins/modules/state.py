#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: state
short_description: Apply a whole desired state to a Fulcrum agent, like fulcrum apply
version_added: 0.1.0
description:
  - Replaces the agent's whole desired state (services, C(xdp), C(ipvs), C(vrrp)) with
    C(PUT /v1/state), atomically (all or nothing), guarded by the revision it read (C(If-Match)).
  - What is not in the given state is removed, as with C(fulcrum apply -f).
  - Check mode sends C(dryRun=true); diff mode shows the API's diff; a state equal to the current one
    is C(changed=false).
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
    description: The API's diff of the model.
options:
  state:
    description:
      - The desired state as a dict (C(services), C(xdp), C(ipvs), C(vrrp); see C(docs/model.md)).
      - An C(agent) key (the agent's own settings in a config file) is dropped.
      - Exactly one of I(state) and I(src) is given.
    type: dict
  src:
    description:
      - A YAML or JSON file on the managed node holding the desired state (an agent config file
        works, its C(agent) section is dropped).
    type: path
'''

EXAMPLES = r'''
- name: The group's services and this node's VRRP instances
  fulcrum.lb.state:
    state:
      services: "{{ fulcrum_services }}"
      vrrp: "{{ fulcrum_vrrp }}"

- name: What the config file on the node says
  fulcrum.lb.state:
    src: /etc/fulcrum/config.yaml
'''

RETURN = r'''
changed:
  description: Whether the API changed (or would change) the desired state.
  returned: always
  type: bool
revision:
  description: The revision after the call (unchanged in check mode and when nothing changed).
  returned: always
  type: int
previous_revision:
  description: The revision read before the write.
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
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.fulcrum.lb.plugins.module_utils.fulcrum import (
    change_result, dry_run_query, merge_argument_spec, run_module,
)

try:
    import yaml
    HAS_YAML = True
except ImportError:  # only src needs it
    HAS_YAML = False


def load_src(module, path):
    try:
        with open(path) as f:
            text = f.read()
    except (IOError, OSError) as e:
        module.fail_json(msg='cannot read %s: %s' % (path, to_native(e)))
    if not HAS_YAML:
        module.fail_json(msg='src needs PyYAML on the managed node')
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        module.fail_json(msg='%s: %s' % (path, to_native(e)))
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        module.fail_json(msg='%s: a desired state is a mapping' % path)
    return doc


def main():
    module = AnsibleModule(
        argument_spec=merge_argument_spec(dict(
            state=dict(type='dict'),
            src=dict(type='path'),
        )),
        mutually_exclusive=[('state', 'src')],
        required_one_of=[('state', 'src')],
        supports_check_mode=True,
    )
    p = module.params
    desired = dict(p['state'] if p['state'] is not None else load_src(module, p['src']))
    desired.pop('agent', None)
    seen = {}

    def body(client):
        def read():
            _, current, headers = client.get('/v1/state')
            revision = client.etag(headers)
            seen['revision'] = current.get('revision', revision) if isinstance(current, dict) else revision
            return revision, current

        def write(revision, _):
            return client.request('PUT', '/v1/state', body=desired, query=dry_run_query(module), if_match=revision)[1]

        result = change_result(client.guarded(read, write))
        result['previous_revision'] = seen.get('revision')
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
