# thread-creds.awk /proc/PID/task/*/status — one JSON line per thread of a process:
# {"step":"thread","tid":N,"comm":...,"uid":"r e s f","gid":...,"groups":...,
#  "inh"/"prm"/"eff"/"bnd"/"amb": the capability sets in hex, as the kernel prints them}.
function flush() {
    if (tid == "") return
    printf "{\"step\":\"thread\",\"tid\":%s,\"comm\":\"%s\",\"uid\":\"%s\",\"gid\":\"%s\",\"groups\":\"%s\",", tid, f["Name"], f["Uid"], f["Gid"], f["Groups"]
    printf "\"inh\":\"%s\",\"prm\":\"%s\",\"eff\":\"%s\",\"bnd\":\"%s\",\"amb\":\"%s\"}\n", f["CapInh"], f["CapPrm"], f["CapEff"], f["CapBnd"], f["CapAmb"]
    tid = ""
    split("", f)
}
FNR == 1 { flush() }
{
    key = $1
    sub(/:$/, "", key)
    $1 = ""
    sub(/^ +/, "")
    gsub(/["\\]/, "")
    f[key] = $0
    if (key == "Pid") tid = $0
}
END { flush() }
