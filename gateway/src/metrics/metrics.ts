/**
 * Every metric the gateway exposes on /metrics, in one place (names, labels,
 * help), on a registry of its own per gateway (prom-client). Components get
 * this object and count what they do; gauges that come from the database are
 * filled once per scrape by collectors (fleet.ts).
 *
 * Naming: `wgs_` prefix, counters end `_total`, durations are `_seconds`
 * histograms, sizes `_bytes`. Labels stay bounded: provider, node, status,
 * state, route templates, outcomes — never a tenant or an instance id (only
 * the opt-in per-instance worker series carry `instance`).
 *
 * Counters and histograms count this process's own work (every replica
 * reports only what it did); the fleet gauges read the database and are the
 * same from every replica (aggregate them with max(), not sum()).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DELIVERY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200];
const MOVE_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly collectors: (() => Promise<void>)[] = [];

  constructor(opts: { defaults?: boolean } = {}) {
    // Process metrics under their standard names (process_*, nodejs_*): what every Prometheus dashboard expects.
    if (opts.defaults !== false) collectDefaultMetrics({ register: this.registry });
  }

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }
  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
    return new Gauge<L>({ name, help, labelNames, registers: [this.registry] });
  }
  private histogram<L extends string>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []) {
    return new Histogram<L>({ name, help, buckets, labelNames, registers: [this.registry] });
  }

  // ------------------------------------------------------------ HTTP (this replica)
  readonly httpRequests = this.counter('wgs_http_requests_total', 'HTTP requests answered, by method, route template and status class (2xx, 4xx...)', [
    'method',
    'route',
    'status_class',
  ] as const);
  readonly httpDuration = this.histogram('wgs_http_request_duration_seconds', 'HTTP request duration by method and route template', LATENCY_BUCKETS, [
    'method',
    'route',
  ] as const);

  // ------------------------------------------------------------ instances and workers
  /** Fleet (database): instances by provider, node, worker status and session state. */
  readonly instances = this.gauge('wgs_instances', 'Instances by provider, node, worker status and WhatsApp session state (fleet, from the database)', [
    'provider',
    'node',
    'status',
    'state',
  ] as const);
  readonly eventStreams = this.gauge('wgs_event_streams_open', 'Live event streams (Server-Sent Events) open on this replica');
  readonly gatewayLeader = this.gauge(
    'wgs_gateway_leader',
    '1 while this replica leads (runs the control loop, drains and node checks), 0 while it follows; labelled with GATEWAY_REPLICA_ID',
    ['replica'] as const,
  );
  readonly workerConnections = this.gauge('wgs_worker_connections', 'Worker sockets connected to this replica, by provider', ['provider'] as const);
  readonly workerRestarts = this.counter('wgs_worker_restarts_total', 'Workers this replica restarted after they exited unasked, by provider', ['provider'] as const);
  readonly workerCrashLoops = this.counter(
    'wgs_worker_crash_loops_total',
    'Instances this replica marked error because their worker kept crashing, by provider',
    ['provider'] as const,
  );
  /** Worker-reported resources, summed per node and provider over the workers connected to this replica. */
  readonly workerMemory = this.gauge('wgs_worker_memory_rss_bytes', 'Resident memory of the workers connected to this replica, summed per node and provider (as they report it)', [
    'node',
    'provider',
  ] as const);
  readonly workerCpu = this.counter('wgs_worker_cpu_seconds_total', 'CPU time the workers connected to this replica used, per node and provider (from their reports)', [
    'node',
    'provider',
  ] as const);
  /** Only with METRICS_PER_INSTANCE=true. */
  readonly instanceMemory = this.gauge('wgs_instance_worker_memory_rss_bytes', 'Resident memory of one instance\'s worker (METRICS_PER_INSTANCE=true only)', [
    'instance',
    'node',
    'provider',
  ] as const);
  readonly instanceCpu = this.counter('wgs_instance_worker_cpu_seconds_total', 'CPU time of one instance\'s worker (METRICS_PER_INSTANCE=true only)', [
    'instance',
    'node',
    'provider',
  ] as const);

  // ------------------------------------------------------------ commands and messages
  /** Fleet (database). */
  readonly commandsPending = this.gauge('wgs_commands_pending', 'Commands waiting for a worker, by command name (fleet, from the database)', ['name'] as const);
  readonly commandsOldestPending = this.gauge('wgs_commands_oldest_pending_seconds', 'Age of the oldest command waiting for a worker (fleet, from the database)');
  readonly sends = this.counter('wgs_sends_total', 'Send outcomes reported to this replica by provider, message type and result (sent, failed, requeued: refused by a rate limit, queued again)', [
    'provider',
    'type',
    'result',
  ] as const);
  readonly messageStatuses = this.counter('wgs_message_status_transitions_total', 'Message status receipts stored by this replica, by provider and status', [
    'provider',
    'status',
  ] as const);
  readonly messagesReceived = this.counter('wgs_messages_received_total', 'Messages received, stored by this replica, by provider', ['provider'] as const);

  // ------------------------------------------------------------ webhooks
  readonly webhookDeliveries = this.counter('wgs_webhook_deliveries_total', 'Webhook delivery attempts by this replica, by outcome (delivered, failed, gone, timeout, error)', [
    'outcome',
  ] as const);
  readonly webhookLatency = this.histogram(
    'wgs_webhook_delivery_latency_seconds',
    'From the event being recorded to the receiver\'s 2xx, for deliveries this replica made',
    DELIVERY_BUCKETS,
  );
  readonly webhookGivenUp = this.counter(
    'wgs_webhook_deliveries_given_up_total',
    'Webhook deliveries this replica gave up on after their last attempt (a webhook.failed event is recorded)',
  );
  /** Fleet (database). */
  readonly outboxPending = this.gauge('wgs_webhook_outbox_pending', 'Webhook deliveries not yet delivered or given up (fleet, from the database)');
  readonly outboxOldestPending = this.gauge('wgs_webhook_outbox_oldest_pending_seconds', 'Age of the oldest pending webhook delivery (fleet, from the database)');
  readonly subscriptionsDisabled = this.gauge('wgs_webhook_subscriptions_disabled', 'Webhook subscriptions disabled (410 Gone, or by their owner) (fleet, from the database)');

  // ------------------------------------------------------------ moves and nodes
  readonly migrations = this.counter('wgs_migrations_total', 'Migrations this replica ran, by result (ok, failed)', ['result'] as const);
  readonly migrationDuration = this.histogram('wgs_migration_duration_seconds', 'Duration of migrations this replica ran', MOVE_BUCKETS, ['result'] as const);
  readonly drains = this.counter('wgs_drains_total', 'Node drain passes this replica ran, by result (ok: the node is empty after it; failed: instances are left, the next pass tries again)', ['result'] as const);
  readonly drainDuration = this.histogram('wgs_drain_duration_seconds', 'Duration of node drains this replica ran', MOVE_BUCKETS, ['result'] as const);
  /** Fleet (database). */
  readonly nodeUp = this.gauge('wgs_node_up', '1 when the node is reachable and accepts instances, 0 otherwise (fleet, from the database)', ['node', 'engine', 'status'] as const);
  readonly nodeCapacityCpu = this.gauge('wgs_node_capacity_cpu_cores', 'CPU cores a node offers to instances (fleet)', ['node'] as const);
  readonly nodeCapacityMemory = this.gauge('wgs_node_capacity_memory_bytes', 'Memory a node offers to instances (fleet)', ['node'] as const);
  readonly nodeReservedCpu = this.gauge('wgs_node_reserved_cpu_cores', 'CPU cores reserved by the instances placed on a node (fleet)', ['node'] as const);
  readonly nodeReservedMemory = this.gauge('wgs_node_reserved_memory_bytes', 'Memory reserved by the instances placed on a node (fleet)', ['node'] as const);

  // ------------------------------------------------------------ database and retention
  // From pg_stat_activity (fleet.ts): postgres.js keeps its pool's queues private, so queries waiting for a connection cannot be counted.
  readonly dbPoolInUse = this.gauge('wgs_db_pool_connections_in_use', 'Postgres connections of this replica busy with a query or a transaction (from pg_stat_activity)');
  readonly dbPoolSize = this.gauge('wgs_db_pool_connections', 'Postgres connections this replica has open (its pool and its LISTEN connection, from pg_stat_activity)');
  readonly tableSize = this.gauge('wgs_table_size_bytes', 'On-disk size of the large tables, indexes and TOAST included (fleet, from the database)', ['table'] as const);
  readonly databaseSize = this.gauge('wgs_database_size_bytes', 'On-disk size of the gateway database (fleet)');
  readonly dataDirFree = this.gauge('wgs_data_dir_free_bytes', 'Free bytes on the filesystem of DATA_DIR (the embedded Postgres lives there)');
  readonly retentionPruned = this.counter('wgs_retention_pruned_total', 'Rows this replica pruned by retention, by table', ['table'] as const);
  readonly retentionLastRun = this.gauge('wgs_retention_last_run_timestamp_seconds', 'When this replica last finished a retention pass (unix seconds)');

  /** A collector runs before every scrape (fleet gauges from the database). */
  addCollector(collect: () => Promise<void>): void {
    this.collectors.push(collect);
  }

  /** The Prometheus text exposition, after every collector ran (a failing one is reported, not fatal). */
  async text(onError?: (err: unknown) => void): Promise<string> {
    await Promise.all(this.collectors.map((c) => c().catch((err) => onError?.(err))));
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
