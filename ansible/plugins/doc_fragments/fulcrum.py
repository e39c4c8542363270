# -*- coding: utf-8 -*-
# Copyright: Fulcrum maintainers
# Apache License 2.0 (see the Fulcrum repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # The connection options every fulcrum.lb module shares. Set them once for a play with
    # module_defaults and the action group group/fulcrum.lb.fulcrum.
    DOCUMENTATION = r'''
options:
  url:
    description:
      - Base URL of the agent's REST API.
      - If not set, the environment variable C(FULCRUM_URL) is used, then C(http://127.0.0.1:9180).
    type: str
    default: http://127.0.0.1:9180
  token:
    description:
      - Bearer token of the API (C(read) is enough for reads, writes need C(admin)).
      - If not set, the environment variable C(FULCRUM_TOKEN) is used.
      - Never logged.
    type: str
  validate_certs:
    description:
      - Whether to verify the agent's TLS certificate (an C(https) URL).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the agent's certificate (a private CA).
    type: path
  timeout:
    description:
      - Seconds to wait for one HTTP response.
    type: float
    default: 30
  restart_timeout:
    description:
      - While the agent refuses connections (it is restarting), retry for up to this many seconds
        before failing. C(0) fails at once.
    type: int
    default: 30
notes:
  - Every failure reports the API's error C(code) and message (C(api_message)), the C(http_status) and C(details).
  - A write that finds the revision changed between its read and its write (HTTP 412) is retried once
    with a fresh ETag.
'''
