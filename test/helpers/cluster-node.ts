// A node that only registers in a cluster and keeps its lease alive, as its own process so that a
// test can freeze it with SIGSTOP (the agent-level test will freeze the real agent the same way).
// Usage: node cluster-node.js ETCD_URL CLUSTER NODE_ID TTL_SECONDS; prints "registered" once.
import { EtcdClient } from '../../src/cluster/etcd-client.js';
import { EtcdStateStore } from '../../src/cluster/etcd-store.js';

const [url, cluster, id, ttl] = process.argv.slice(2);
const store = new EtcdStateStore({
  client: new EtcdClient({ endpoints: [url!], requestTimeoutMs: 1000 }),
  cluster: cluster!, leaseTtlSeconds: Number(ttl),
  onError: (e, what) => process.stderr.write(`${what}: ${e.message}\n`),
});
await store.register({ id: id!, address: 'http://127.0.0.1:1', dataplanes: ['xdp'] });
process.stdout.write('registered\n');
// The keepalive timer is unref'd (it never keeps an agent alive by itself): hold the process here.
setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => { void store.close().finally(() => process.exit(0)); });
