/**
 * A real single-node Docker Swarm on loopback for tests and benchmarks. The
 * local daemon becomes a manager listening, advertising and carrying data
 * traffic on 127.0.0.1 only (`--advertise-addr`, `--listen-addr` and
 * `--data-path-addr`); workers are services on the `host` network. A swarm
 * the run did not make is used as it is and left alone; one it made is left
 * at the end (`swarm leave --force`), and so is the `docker_gwbridge`
 * network that leaving keeps, so the daemon is as the run found it.
 */
import { docker } from './docker';

export interface TestSwarm {
  /** The swarm node's id and hostname (the local daemon). */
  nodeId: string;
  hostname: string;
  /** True when this run initialised the swarm (and will leave it). */
  initialised: boolean;
  /** Sets (or with `undefined` removes) a label on the swarm node. */
  label(key: string, value: string | undefined): Promise<void>;
  /** Leaves the swarm if this run made it; restores labels otherwise. */
  close(): Promise<void>;
}

export async function startSwarm(): Promise<TestSwarm> {
  const before = (await docker.info()).Swarm ?? {};
  let initialised = false;
  let hadGwbridge = true;
  if (before.LocalNodeState !== 'active') {
    hadGwbridge = (await docker.listNetworks({ filters: { name: ['docker_gwbridge'] } })).some((n) => n.Name === 'docker_gwbridge');
    await docker.swarmInit({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1', DataPathAddr: '127.0.0.1', ForceNewCluster: false });
    initialised = true;
  } else if (!before.ControlAvailable) {
    throw new Error('the local Docker daemon is a swarm worker, not a manager: swarm tests need a manager (or no swarm at all)');
  }
  // A fresh manager answers before its control socket does: wait until it lists itself ready.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await docker
      .listNodes()
      .then((nodes) => nodes.some((n: { Status?: { State?: string } }) => n.Status?.State === 'ready'))
      .catch(() => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error('the swarm manager did not list a ready node within 30 s');
    await Bun.sleep(100);
  }
  const info = await docker.info();
  const nodeId: string = info.Swarm.NodeID;
  const node = docker.getNode(nodeId);
  const spec = async () => (await node.inspect()) as { Version: { Index: number }; Spec: { Labels?: Record<string, string> }; Description: { Hostname: string } };
  const original = { ...(await spec()).Spec.Labels };
  const hostname = (await spec()).Description.Hostname;
  const setLabels = async (labels: Record<string, string>) => {
    const current = await spec();
    await node.update({ _query: { version: current.Version.Index }, _body: { ...current.Spec, Labels: labels } } as never);
  };
  return {
    nodeId,
    hostname,
    initialised,
    async label(key, value) {
      const labels = { ...(await spec()).Spec.Labels };
      if (value === undefined) delete labels[key];
      else labels[key] = value;
      await setLabels(labels);
    },
    async close() {
      if (!initialised) {
        await setLabels(original).catch(() => {});
        return;
      }
      await docker.swarmLeave({ force: true });
      // Task containers a leave cuts short stay behind: every one is this run's, as the swarm was.
      for (const c of await docker.listContainers({ all: true, filters: { label: ['com.docker.swarm.task.id'] } })) {
        await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
      }
      if (!hadGwbridge) {
        for (const n of await docker.listNetworks({ filters: { name: ['docker_gwbridge'] } })) {
          if (n.Name === 'docker_gwbridge') await docker.getNetwork(n.Id).remove().catch(() => {});
        }
      }
    },
  };
}
