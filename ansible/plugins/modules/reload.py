#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: reload
short_description: Make a Fulcrum agent re-read its config file (POST /v1/reload)
version_added: 0.1.0
description:
  - Calls C(POST /v1/reload) (an admin token is needed); the agent re-reads its config file and
    applies it atomically like any other change; a file that fails validation is refused with the
    API's error and the running state stays as it was. This is what SIGHUP (C(systemctl reload)) does.
  - The role M(fulcrum.lb.agent) uses it as its reload handler when the agent is not run by systemd.
  - Settings of the file's C(agent) section that differ from the running ones are not applied by
    a reload (they need a restart); the API names them (C(restartNeeded)) and the module warns.
  - Check mode sends C(?dryRun=true); the agent reads and validates the file and plans the change,
    applies nothing and keeps its revision.
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
    description: The API's diff of the change the reload made.
options: {}
'''

EXAMPLES = r'''
- name: Apply the edited config file
  fulcrum.lb.reload:
    url: http://127.0.0.1:9180
    token: "{{ fulcrum_admin_token }}"
'''

RETURN = r'''
changed:
  description: Whether the reload changed the desired state (the API's answer).
  returned: always
  type: bool
revision:
  description: The revision after the reload.
  returned: always
  type: int
api_diff:
  description: The API's diff.
  returned: always
  type: list
  elements: dict
restart_needed:
  description: The C(agent) settings of the file that differ from the running ones (they take effect at the next start).
  returned: always
  type: list
  elements: str
  sample: [agent.api]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fulcrum.lb.plugins.module_utils.fulcrum import (
    change_result, dry_run_query, merge_argument_spec, run_module,
)


def main():
    module = AnsibleModule(argument_spec=merge_argument_spec({}), supports_check_mode=True)

    def body(client):
        answer = client.request('POST', '/v1/reload', body={}, query=dry_run_query(module))[1] or {}
        result = change_result(answer)
        result['restart_needed'] = answer.get('restartNeeded', [])
        if result['restart_needed']:
            module.warn('the reload did not apply %s: these settings take effect when the agent restarts' % ', '.join(result['restart_needed']))
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
