/**
 * The Runtime Evidence Record, as TypeScript types mirroring schema/runtime-evidence.v1.json.
 * u64 kernel values (timestamps, cgroup ids) are bigint so they survive exactly into JSON.
 */

export type FileAccess = 'read' | 'write' | 'read_write' | 'unknown';

export interface FileOpenEvent {
  type: 'file_open';
  path: string;
  flags?: number;
  access?: FileAccess;
  dfd?: number;
  mode?: number;
}

export interface ProcessExecEvent {
  type: 'process_exec';
  filename: string;
  ppid?: number;
  argv0?: string;
}

export const TCP_STATE_NAMES = [
  'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT',
  'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV',
] as const;
export type TcpStateName = (typeof TCP_STATE_NAMES)[number];

export interface TcpStateEvent {
  type: 'tcp_state';
  oldstate: TcpStateName;
  newstate: TcpStateName;
  saddr?: string;
  sport?: number;
  daddr: string;
  dport: number;
  family?: 'inet' | 'inet6';
}

export interface NetConnectEvent {
  type: 'net_connect';
  fd?: number;
  addr: string;
  port: number;
  success?: boolean;
  error?: number;
}

export interface SslOpEvent {
  type: 'ssl_op';
  operation: 'read' | 'write';
  bytes?: number;
  ssl_ptr?: string;
}

export type Runtime = 'native' | 'jvm' | 'node' | 'python' | 'dotnet' | 'go' | 'ruby';

export interface FunctionCallEvent {
  type: 'function_call';
  addr: string;
  symbol?: string;
  library?: string;
  runtime?: Runtime;
  stack?: string[];
  node_hash?: string;
}

export type EvidenceEvent =
  | FileOpenEvent
  | ProcessExecEvent
  | TcpStateEvent
  | NetConnectEvent
  | SslOpEvent
  | FunctionCallEvent;

export type EventType = EvidenceEvent['type'];

export const EVENT_TYPES: readonly EventType[] = [
  'file_open', 'process_exec', 'tcp_state', 'net_connect', 'ssl_op', 'function_call',
];

/** EvidenceRecord is one line of NDJSON evidence. */
export interface EvidenceRecord<E extends EvidenceEvent = EvidenceEvent> {
  ts_ns: bigint;
  src: string;
  pid: number;
  tid?: number;
  cgroup_id?: bigint;
  container_id?: string;
  image_digest?: string;
  comm: string;
  event: E;
}
