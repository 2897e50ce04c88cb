<#
.SYNOPSIS
  Removes the wskudp device and driver package from a test VM.
  NOT RUN by this project: no Windows machine was available.
#>
$ErrorActionPreference = "Continue"
pnputil /remove-device /deviceid "Root\wskudp"
$published = (pnputil /enum-drivers | Select-String -Context 1,0 "wskudp.inf") |
    ForEach-Object { ($_.Context.PreContext[0] -split ":\s+")[1] }
foreach ($inf in $published) { pnputil /delete-driver $inf /uninstall /force }
