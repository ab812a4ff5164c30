// kwok configuration for what the CLI e2e needs from simulated pods: container logs (ClusterLogs serving one
// CRI-format file for every container, through kwok's kubelet API) and one-off pods that finish (a Stage).
// Used by the control plane: `startControlPlane({ kwokConfigs: [await writeKwokLogsConfig(dir)] })`.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** What every simulated container "prints", in order. Tests assert these lines. */
export const SIMULATED_LOG_LINES = [
  "simulated by kwok: container started",
  "simulated by kwok: listening on :8080",
  "simulated by kwok: ready",
];

/** How long a one-off pod (label slipway.dev/run) runs before kwok marks it finished. */
export const SIMULATED_RUN_MS = 3000;

/**
 * Writes the log file and the kwok config (ClusterLogs + the one-off pod Stage) into `dir`; returns the
 * config path for kwok's `--config`. A one-off pod exits with N when its command ends in "exit N", else 0.
 */
export async function writeKwokLogsConfig(dir: string): Promise<string> {
  const logsFile = join(dir, "kwok-container.log");
  const t = "2025-01-01T00:00:00.000000000Z";
  await writeFile(logsFile, SIMULATED_LOG_LINES.map((l) => `${t} stdout F ${l}\n`).join(""));
  const config = join(dir, "kwok-logs.yaml");
  await writeFile(config, `apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: slipway-simulated-logs
spec:
  logs:
  - logsFile: ${JSON.stringify(logsFile)}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: slipway-run-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["slipway.dev/run"]'
      operator: 'Exists'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
  delay:
    durationMilliseconds: ${SIMULATED_RUN_MS}
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $code := 0 }}
      {{ with (index .spec.containers 0).command }}
      {{ with regexFind "exit [0-9]+$" (join " " .) }}{{ $code = atoi (trimPrefix "exit " .) }}{{ end }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {{ $code }}
            finishedAt: {{ $now | Quote }}
            reason: {{ if eq $code 0 }}Completed{{ else }}Error{{ end }}
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: {{ if eq $code 0 }}Succeeded{{ else }}Failed{{ end }}
`);
  return config;
}
