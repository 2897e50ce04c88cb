<#
.SYNOPSIS
  Puts wskudp.sys under Driver Verifier and runs the scenario suite against it.
.DESCRIPTION
  The Verifier settings follow research/anchors.md section 4: the standard rules (/standard:
  special pool, IRQL checking, pool tracking, I/O verification, deadlock detection, security,
  miscellaneous, DDI compliance) plus KMDF verification, run twice: with I/O verification on
  and off (usbip-win2#181 showed I/O verification can hide overruns), and once more with
  systematic low-resources simulation. Every run records `verifier /querysettings`.
  NOT RUN by this project: no Windows machine was available.
.PARAMETER Phase
  standard | no-io-verification | low-resources | run | reset
#>
param(
    [ValidateSet("standard", "no-io-verification", "low-resources", "run", "reset")]
    [string]$Phase = "standard",
    [string]$Log = ".\verifier-$((Get-Date).ToString('yyyyMMdd-HHmmss')).log"
)
$ErrorActionPreference = "Stop"

function Record { verifier /querysettings | Tee-Object -FilePath $Log -Append }

switch ($Phase) {
    "standard" {
        # 0x209BB = the standard flags with DDI compliance checking.
        verifier /flags 0x209BB /driver wskudp.sys
        # KMDF's own verifier for this driver.
        reg add "HKLM\SYSTEM\CurrentControlSet\Services\wskudp\Parameters\Wdf" /v VerifierOn /t REG_DWORD /d 1 /f | Out-Null
        Record
        Write-Warning "Reboot for the settings to apply, then run: verifier.ps1 -Phase run"
    }
    "no-io-verification" {
        # The standard flags without I/O verification (0x10).
        verifier /flags 0x209AB /driver wskudp.sys
        Record
        Write-Warning "Reboot, then: verifier.ps1 -Phase run"
    }
    "low-resources" {
        # Standard + systematic low-resources simulation (0x40000): every allocation and
        # IRP/MDL creation fails in turn; every failure must surface as a clean status.
        verifier /flags 0x609BB /driver wskudp.sys
        Record
        Write-Warning "Reboot, then: verifier.ps1 -Phase run"
    }
    "run" {
        Record
        # Load/unload cycles, then the full scenario suite, then unload: any bugcheck
        # (0xC4, 0xC9, 0xCE, ...) or leak at unload (0xC4/0x62) fails the run.
        for ($i = 0; $i -lt 3; $i++) {
            pnputil /disable-device /deviceid "Root\wskudp" | Out-Null
            pnputil /enable-device /deviceid "Root\wskudp" | Out-Null
        }
        wskudp.exe --backend device scenarios --json | Tee-Object -FilePath $Log -Append
        if ($LASTEXITCODE -ne 0) { throw "scenarios failed under Verifier (see $Log)" }
        verifier /query | Tee-Object -FilePath $Log -Append
    }
    "reset" {
        verifier /reset
        Write-Warning "Reboot to leave Driver Verifier."
    }
}
