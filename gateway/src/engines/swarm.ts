import type { NodeHealth } from '../nodes/health';
import type Dockerode from 'dockerode';
import type { Logger } from '../logging/logger';
import { demux, imageFor, type WorkerImages } from './docker';
import { LABELS } from './docker-spec';
import { EngineError, type Engine, type WorkerExit, type WorkerInfo, type WorkerSpec } from './engine';
import {
  constraintsFor,
  isTerminal,
  isUp,
  latestTask,
  serviceImage,
  serviceSpec,
  STOP_GRACE_NS,
  swarmCapacity,
  taskExit,
  taskReason,
  type SwarmNode,
  type SwarmNodeSettings,
  type SwarmTask,
} from './swarm-spec';

const DEFAULT_STOP_TIMEOUT_MS = STOP_GRACE_NS / 1_000_000;
/** How long ensure() waits for the task to run (a node may be pulling the image). */
const DEFAULT_START_TIMEOUT_MS = 60_000;
/** A task Swarm cannot place ("no suitable node") is given this long before the start fails with Swarm's reason. */
const DEFAULT_UNSCHEDULABLE_MS = 3_000;
/** How often the engine reads the tasks of its services for onExit. */
const DEFAULT_POLL_MS = 1_000;

type Service = { ID: string; CreatedAt?: string; Version?: { Index: number }; Spec?: Dockerode.ServiceSpec };

/**
 * Workers as Swarm services on one Swarm manager endpoint (a gateway node of
 * engine `swarm`): one replicated service with one replica per instance,
 * specs from swarm-spec.ts. Swarm places and runs the task; the gateway
 * keeps restarting workers itself with fresh tokens (restart condition
 * `none`), as on docker nodes.
 *
 * Exits come from polling the services' tasks (every second): the Engine
 * API's event stream has no task events (only service create/update/remove),
 * and container events only cover the manager's own daemon, not the nodes
 * the tasks run on. A task seen running (or starting) that reaches a final
 * state is an exit, with Swarm's error as its reason.
 */
export class SwarmEngine implements Engine {
  readonly kind = 'swarm' as const;
  private readonly listeners: ((exit: WorkerExit) => void)[] = [];
  /** Services this engine is stopping or removing: their tasks' ends are asked for, reported by stop() itself. */
  private readonly stopping = new Set<string>();
  /** Tasks seen not yet finished: id → instance and when it was first seen running. */
  private readonly live = new Map<string, { instanceId: number; runningSince: number | null }>();
  /** Tasks whose end was already reported (or was ensure()'s to report). */
  private readonly ended = new Set<string>();
  private pollTimer?: ReturnType<typeof setTimeout>;
  private watching = false;
  private readonly constraints: string[];
  /** The last lifecycle call per instance: ensure, stop and remove of one number run one after another. */
  private readonly queues = new Map<number, Promise<unknown>>();

  constructor(
    private readonly docker: Dockerode,
    private readonly opts: {
      node: SwarmNodeSettings;
      images: WorkerImages;
      gatewayId: string;
      cmd?: string[];
      logger: Logger;
      pollMs?: number;
      startTimeoutMs?: number;
      unschedulableMs?: number;
    },
  ) {
    this.constraints = constraintsFor(opts.node.labels);
  }

  /** Starts polling the tasks of this node's services for exits. */
  async watch(): Promise<void> {
    if (this.watching) return;
    this.watching = true;
    // The first pass only learns what runs: ends that happened before this gateway looked are the control loop's.
    await this.poll(false).catch((err) => this.opts.logger.warn({ err }, 'swarm: reading tasks failed; trying again'));
    this.schedulePoll();
  }

  unwatch(): void {
    this.watching = false;
    clearTimeout(this.pollTimer);
  }

  private schedulePoll(): void {
    if (!this.watching) return;
    this.pollTimer = setTimeout(() => {
      this.poll(true)
        .catch((err) => this.opts.logger.warn({ err }, 'swarm: reading tasks failed; trying again'))
        .finally(() => this.schedulePoll());
    }, this.opts.pollMs ?? DEFAULT_POLL_MS);
  }

  private nodeFilter(): string[] {
    return [`${LABELS.gateway}=${this.opts.gatewayId}`, `${LABELS.node}=${this.opts.node.name}`];
  }

  /** One read of this node's tasks: tasks that were live and have ended are reported as exits. */
  private async poll(report: boolean): Promise<void> {
    const tasks = (await this.docker.listTasks({ filters: { label: this.nodeFilter() } })) as SwarmTask[];
    const seen = new Set<string>();
    for (const task of tasks) {
      seen.add(task.ID);
      const instanceId = Number(task.Spec?.ContainerSpec?.Labels?.[LABELS.instance]);
      if (!Number.isInteger(instanceId) || this.ended.has(task.ID)) continue;
      if (!isTerminal(task)) {
        const known = this.live.get(task.ID);
        const running = isUp(task) ? (known?.runningSince ?? (Date.parse(task.Status?.Timestamp ?? '') || Date.now())) : null;
        this.live.set(task.ID, { instanceId, runningSince: running });
        continue;
      }
      const known = this.live.get(task.ID);
      this.live.delete(task.ID);
      this.ended.add(task.ID);
      if (!report || !known || this.stopping.has(task.ServiceID)) continue;
      await this.reportExit(instanceId, task, known.runningSince);
    }
    // Tasks gone from the list (their service was removed) are forgotten.
    for (const id of this.live.keys()) if (!seen.has(id)) this.live.delete(id);
    for (const id of this.ended) if (!seen.has(id)) this.ended.delete(id);
    const services = new Set(tasks.map((t) => t.ServiceID));
    for (const id of this.stopping) if (!services.has(id)) this.stopping.delete(id);
  }

  private async reportExit(instanceId: number, task: SwarmTask, runningSince: number | null): Promise<void> {
    const { exitCode, signal } = taskExit(task);
    const reason = (await this.oomReason(task)) ?? taskReason(task);
    const ended = Date.parse(task.Status?.Timestamp ?? '') || Date.now();
    const exit: WorkerExit = { instanceId, exitCode, signal, requested: false, ranMs: runningSince === null ? 0 : Math.max(0, ended - runningSince), reason };
    this.opts.logger.info({ instanceId, task: task.ID, state: task.Status?.State, reason }, 'swarm task ended');
    for (const listener of this.listeners) listener(exit);
  }

  /**
   * Swarm's task error does not say a container was killed for memory
   * ("task: non-zero exit (137)"); the container does, when it ran on the
   * manager's own daemon (tasks on other nodes are out of this endpoint's reach).
   */
  private async oomReason(task: SwarmTask): Promise<string | null> {
    const id = task.Status?.ContainerStatus?.ContainerID;
    if (!id) return null;
    const info = await this.docker
      .getContainer(id)
      .inspect()
      .catch(() => null);
    if (!info?.State?.OOMKilled) return null;
    const limit = info.HostConfig?.Memory;
    return `out of memory${limit ? ` (limit ${Math.round(limit / 2 ** 20)} MiB)` : ''}: swarm task failed: ${task.Status?.Err ?? 'killed'}`;
  }

  /**
   * Runs lifecycle calls of one instance in order: two starts racing (a
   * migration overlapping a restart) would otherwise each remove the
   * service the other just created.
   */
  private serial<T>(instanceId: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(instanceId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.queues.set(instanceId, tail);
    void tail.then(() => {
      if (this.queues.get(instanceId) === tail) this.queues.delete(instanceId);
    });
    return run;
  }

  ensure(spec: WorkerSpec): Promise<WorkerInfo> {
    return this.serial(spec.instanceId, () => this.ensureNow(spec));
  }

  private async ensureNow(spec: WorkerSpec): Promise<WorkerInfo> {
    const existing = await this.find(spec.instanceId);
    if (existing) {
      const info = await this.infoOf(spec.instanceId, existing);
      if (info.state === 'running') return info;
      // A service that does not run holds an old token and environment: replace it.
      await this.removeService(existing, 0);
    }
    const image = await this.resolveImage(imageFor(this.opts.images, spec.provider));
    let service: Dockerode.Service;
    try {
      service = await this.docker.createService(serviceSpec(spec, this.opts.node, { image, gatewayId: this.opts.gatewayId, cmd: this.opts.cmd }));
    } catch (err) {
      throw new EngineError('start_failed', `failed to start worker for instance ${spec.instanceId} on swarm node ${this.opts.node.name}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const info = await this.waitRunning(spec.instanceId, service.id);
    this.opts.logger.info({ instanceId: spec.instanceId, tenantId: spec.tenantId, node: this.opts.node.name, service: service.id }, 'worker service started');
    return info;
  }

  /**
   * Waits until the service's task runs. Swarm's own verdict ends the wait:
   * a task that ends (an image no node has, a bind mount missing) or that
   * cannot be placed ("no suitable node") fails the start with Swarm's
   * reason, and the service goes, so nothing is left pending behind the
   * gateway's back.
   */
  private async waitRunning(instanceId: number, serviceId: string): Promise<WorkerInfo> {
    const started = Date.now();
    const deadline = started + (this.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
    const unschedulable = this.opts.unschedulableMs ?? DEFAULT_UNSCHEDULABLE_MS;
    let why = 'no task yet';
    for (;;) {
      const tasks = (await this.docker.listTasks({ filters: { service: [serviceId] } }).catch(() => [])) as SwarmTask[];
      const task = latestTask(tasks);
      if (task && isUp(task)) {
        this.live.set(task.ID, { instanceId, runningSince: Date.now() });
        return this.taskInfo(instanceId, task);
      }
      if (task && isTerminal(task)) {
        this.ended.add(task.ID);
        why = taskReason(task) ?? `swarm task ${task.Status?.State}`;
        break;
      }
      if (task) why = taskReason(task) ?? `swarm task ${task.Status?.State ?? 'new'}${task.Status?.Message ? `: ${task.Status.Message}` : ''}`;
      const pendingWithError = task?.Status?.State === 'pending' && Boolean(task.Status.Err);
      if ((pendingWithError && Date.now() - started >= unschedulable) || Date.now() >= deadline) break;
      await Bun.sleep(100);
    }
    await this.removeService({ ID: serviceId }, 0).catch((err) => this.opts.logger.warn({ err, instanceId }, 'swarm: removing a service that did not start failed'));
    throw new EngineError('start_failed', `failed to start worker for instance ${instanceId} on swarm node ${this.opts.node.name}: ${why}`);
  }

  /**
   * The image as the service names it, read off the manager at every start
   * (a tag rebuilt there gets a new id), never through a registry (see serviceImage).
   */
  private async resolveImage(image: string): Promise<string> {
    const local = await this.docker
      .getImage(image)
      .inspect()
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return null;
        throw new EngineError('unavailable', `swarm node ${this.opts.node.name}: cannot check for image ${image}: ${(err as Error).message}`, { cause: err });
      });
    return serviceImage(image, local);
  }

  /**
   * Stops the task and scales the service to 0. Swarm's own shutdown of a
   * task on a network (`host` included) first waits 2 s for gossip to
   * converge (moby's container controller, defaultGossipConvergeDelay), for
   * nothing on the host network; so when the task's container is on the
   * manager's own daemon the engine stops it itself, as `docker stop` does
   * (SIGTERM, SIGKILL after `timeoutMs`). Else Swarm does (SIGTERM, then
   * SIGKILL after the task's 10 s grace period).
   */
  stop(instanceId: number, timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    return this.serial(instanceId, () => this.stopNow(instanceId, timeoutMs));
  }

  private async stopNow(instanceId: number, timeoutMs: number): Promise<void> {
    const found = await this.find(instanceId);
    if (!found) return;
    const before = await this.infoOf(instanceId, found);
    this.stopping.add(found.ID);
    if (before.state === 'running' && before.containerId) await this.stopLocalContainer(before.containerId, timeoutMs);
    await this.scaleToZero(found);
    await this.waitStopped(found.ID, Math.max(timeoutMs, DEFAULT_STOP_TIMEOUT_MS) + 5_000);
    if (before.state === 'running') {
      const [task] = (await this.tasksOf(found.ID)).filter((t) => t.ID === before.taskId);
      const { exitCode, signal } = task ? taskExit(task) : { exitCode: null, signal: null };
      const exit: WorkerExit = { instanceId, exitCode, signal, requested: true, ranMs: Date.now() - before.startedAt.getTime() };
      for (const listener of this.listeners) listener(exit);
    }
  }

  /** `docker stop` on the task's container when this endpoint's daemon runs it; false when it does not. */
  private async stopLocalContainer(containerId: string, timeoutMs: number): Promise<boolean> {
    return this.docker
      .getContainer(containerId)
      .stop({ t: Math.ceil(timeoutMs / 1000) })
      .then(
        () => true,
        (err: { statusCode?: number }) => err.statusCode === 304, // 304: already stopped; 404: on another node
      );
  }

  /** An update needs the service's current version: one racing another (two stops, a remove) reads it again. */
  private async scaleToZero(service: Service): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (!service.Spec || service.Spec.Mode?.Replicated?.Replicas === 0) return;
      try {
        await this.docker.getService(service.ID).update({
          _query: { version: service.Version!.Index },
          _body: { ...service.Spec, Mode: { Replicated: { Replicas: 0 } } },
        });
        return;
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return;
        if (attempt >= 3) throw err;
        const again = (await this.docker.listServices({ filters: { id: [service.ID] } })) as Service[];
        const current = again.find((s) => s.ID === service.ID);
        if (!current) return;
        service = current;
      }
    }
  }

  /** Stops the task gracefully, then removes the service. */
  remove(instanceId: number): Promise<void> {
    return this.serial(instanceId, () => this.removeNow(instanceId));
  }

  private async removeNow(instanceId: number): Promise<void> {
    const found = await this.find(instanceId);
    if (!found) return;
    await this.stopNow(instanceId, DEFAULT_STOP_TIMEOUT_MS);
    await this.removeService(found, DEFAULT_STOP_TIMEOUT_MS);
  }

  private async removeService(service: Pick<Service, 'ID'>, waitMs: number): Promise<void> {
    this.stopping.add(service.ID);
    await this.docker
      .getService(service.ID)
      .remove()
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 404) throw err;
      });
    if (waitMs > 0) await this.waitStopped(service.ID, waitMs);
  }

  /** Until every task of the service has ended (or is gone with it). */
  private async waitStopped(serviceId: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.tasksOf(serviceId)).some((t) => !isTerminal(t))) {
      if (Date.now() > deadline) throw new EngineError('unavailable', `swarm node ${this.opts.node.name}: service ${serviceId} still has a running task after ${timeoutMs / 1000} s`);
      await Bun.sleep(100);
    }
  }

  async inspect(instanceId: number): Promise<WorkerInfo | null> {
    const found = await this.find(instanceId);
    if (!found) return null;
    const { taskId: _t, containerId: _c, ...info } = await this.infoOf(instanceId, found);
    return info;
  }

  async list(): Promise<WorkerInfo[]> {
    const [services, tasks] = await Promise.all([
      this.docker.listServices({ filters: { label: this.nodeFilter() } }) as Promise<Service[]>,
      this.docker.listTasks({ filters: { label: this.nodeFilter() } }) as Promise<SwarmTask[]>,
    ]);
    return services.map((s) => {
      const instanceId = Number(s.Spec?.Labels?.[LABELS.instance]);
      const { taskId: _t, containerId: _c, ...info } = this.summarise(
        instanceId,
        s,
        tasks.filter((t) => t.ServiceID === s.ID),
      );
      return info;
    });
  }

  async logs(instanceId: number, tail = 200): Promise<string[]> {
    const found = await this.find(instanceId);
    if (!found) throw new EngineError('not_found', `no worker service for instance ${instanceId}`);
    const raw = (await this.docker.getService(found.ID).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
    return demux(Buffer.from(raw)).split('\n').filter(Boolean);
  }

  onExit(listener: (exit: WorkerExit) => void): void {
    this.listeners.push(listener);
  }

  /** The instance's service on this swarm, whichever gateway node of the swarm made it (the name is the same). */
  private async find(instanceId: number): Promise<Service | undefined> {
    const [found] = (await this.docker.listServices({
      filters: { label: [`${LABELS.gateway}=${this.opts.gatewayId}`, `${LABELS.instance}=${instanceId}`] },
    })) as Service[];
    return found;
  }

  private async tasksOf(serviceId: string): Promise<SwarmTask[]> {
    return (await this.docker.listTasks({ filters: { service: [serviceId] } }).catch((err: { statusCode?: number }) => {
      if (err.statusCode === 404) return [];
      throw err;
    })) as SwarmTask[];
  }

  private async infoOf(instanceId: number, service: Service): Promise<WorkerInfo & { taskId?: string; containerId?: string }> {
    return this.summarise(instanceId, service, await this.tasksOf(service.ID));
  }

  /** A service's state is its newest task's: running, or exited with Swarm's reason. */
  private summarise(instanceId: number, service: Service, tasks: SwarmTask[]): WorkerInfo & { taskId?: string; containerId?: string } {
    const task = latestTask(tasks);
    if (task && isUp(task) && task.DesiredState === 'running') {
      return { ...this.taskInfo(instanceId, task), taskId: task.ID, containerId: task.Status?.ContainerStatus?.ContainerID };
    }
    const exit = task ? taskExit(task) : { exitCode: null };
    return {
      instanceId,
      state: 'exited',
      startedAt: new Date(task?.CreatedAt ?? service.CreatedAt ?? Date.now()),
      exitCode: exit.exitCode,
      reason: task ? (taskReason(task) ?? `swarm task ${task.Status?.State}`) : 'the service has no task',
      taskId: task?.ID,
    };
  }

  private taskInfo(instanceId: number, task: SwarmTask): WorkerInfo {
    return {
      instanceId,
      state: 'running',
      pid: task.Status?.ContainerStatus?.PID || undefined,
      startedAt: new Date(task.Status?.Timestamp ?? task.CreatedAt ?? Date.now()),
    };
  }
}

/** A swarm node's health: the same shape as every node's (nodes/health.ts). */
export type SwarmHealth = NodeHealth;

/**
 * A swarm gateway node's health: the endpoint answers, is a swarm manager
 * (a worker node cannot create services), and at least one ready, active
 * swarm node satisfies the gateway node's constraints. Capacity is the sum
 * of those nodes' CPUs and memory; workers are this gateway's services on
 * the gateway node whose task runs.
 */
export async function swarmHealth(docker: Dockerode, node: { name: string; labels: Record<string, string> }, gatewayId: string): Promise<SwarmHealth> {
  const down = (reason: string): SwarmHealth => ({ status: 'unreachable', reason, millicpu: null, memoryBytes: null, version: null, workers: null });
  const info = await docker.info();
  const swarm = info.Swarm ?? {};
  if (swarm.LocalNodeState !== 'active') {
    return down(`the Docker endpoint is not part of a swarm (swarm state ${swarm.LocalNodeState || 'inactive'}): run docker swarm init there, or point the node at a swarm manager`);
  }
  if (!swarm.ControlAvailable) {
    return down('the Docker endpoint is a swarm worker, not a manager: point the node at a manager (docker node ls there lists the managers)');
  }
  const constraints = constraintsFor(node.labels);
  const filter = [`${LABELS.gateway}=${gatewayId}`, `${LABELS.node}=${node.name}`];
  const [nodes, tasks] = await Promise.all([
    docker.listNodes() as Promise<SwarmNode[]>,
    docker.listTasks({ filters: { label: filter, 'desired-state': ['running'] } }) as Promise<SwarmTask[]>,
  ]);
  const capacity = swarmCapacity(nodes, constraints);
  if (capacity.nodes === 0) {
    const where = constraints.length ? ` matching ${constraints.join(', ')}` : '';
    return down(`no ready, active swarm node${where} (${nodes.length} node${nodes.length === 1 ? '' : 's'} in the swarm)`);
  }
  return {
    status: 'ready',
    reason: null,
    millicpu: capacity.millicpu,
    memoryBytes: capacity.memoryBytes,
    version: info.ServerVersion ?? null,
    workers: new Set(tasks.filter(isUp).map((t) => t.ServiceID)).size,
  };
}
