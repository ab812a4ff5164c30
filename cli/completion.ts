// Shell completion generated from the command table: command names, their flags, and App names from the cluster.
import { COMMANDS, GLOBAL_FLAGS } from "./commands.js";

export function completionScript(shell: "bash" | "zsh"): string {
  const names = COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])]).join(" ");
  const globals = Object.entries(GLOBAL_FLAGS).map(([k, f]) => `--${k}${f.short ? ` -${f.short}` : ""}`).join(" ");
  const cases = COMMANDS.map((c) => {
    const flags = Object.entries(c.flags).map(([k, f]) => `--${k}${f.short ? ` -${f.short}` : ""}`).join(" ");
    return `    ${[c.name, ...(c.aliases ?? [])].join("|")}) flags="${flags}"; takes_app=${c.positionals[0]?.name === "NAME" ? 1 : 0} ;;`;
  }).join("\n");
  const bash = `# kubectl-slipway completion for ${shell}. Load with: source <(kubectl-slipway completion ${shell})
_kubectl_slipway() {
  local cur cmd flags takes_app i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) cmd="\${COMP_WORDS[i]}"; break ;; esac
  done
  if [[ -z "$cmd" ]]; then
    COMPREPLY=($(compgen -W "${names} help" -- "$cur"))
    return
  fi
  flags=""; takes_app=0
  case "$cmd" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags ${globals} --help" -- "$cur"))
  elif [[ "$cmd" == completion ]]; then
    COMPREPLY=($(compgen -W "bash zsh" -- "$cur"))
  elif [[ $takes_app == 1 && $i == $((COMP_CWORD - 1)) ]]; then
    COMPREPLY=($(compgen -W "$(kubectl get apps.slipway.dev -o jsonpath='{.items[*].metadata.name}' 2>/dev/null)" -- "$cur"))
  fi
}
complete -F _kubectl_slipway kubectl-slipway
`;
  if (shell === "bash") return bash;
  return `#compdef kubectl-slipway\nautoload -U +X bashcompinit && bashcompinit\n${bash}`;
}
