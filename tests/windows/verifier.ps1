#Requires -RunAsAdministrator
<#
.SYNOPSIS
  Runs wskudp under Driver Verifier on a test VM, one phase at a time (README "Driver
  Verifier runbook").
.DESCRIPTION
  Phases, in the order the runbook uses them:
    dumps          Kernel memory dumps on, automatic reboot on, the dump kept. Do this first.
    standard       verifier /standard /driver wskudp.sys (every standard rule class: special
                   pool, IRQL, pool tracking, I/O verification, deadlock detection, DMA,
                   security, miscellaneous, DDI compliance, WDF verification), the KMDF
                   verifier's own handle tracking, and /bootmode resetonbootfail against a
                   bugcheck boot loop. Takes effect at the next boot.
    low-resources  Systematic low resources simulation for wskudp.sys only. Windows 11:
                   'verifier /dif 19 /now /driver wskudp.sys' (rule class 19 in DIF mode, the
                   replacement for /volatile on the verifier command-line page): no reboot,
                   nothing survives one, and valid only while no rule class is running, so
                   it starts from a reset VM (-Phase reset, reboot). Server 2022 (below DIF
                   mode's build): the Windows 10 spelling, /flags 0x609BB (the standard flags
                   and 0x40000) with KMDF's own verifier on through the service's
                   Parameters\Wdf values (the flags alone leave WDF verification out), at the
                   next boot. Then: verifier.ps1 -Phase run -ExpectInjectedFailures.
    run            The test pass under whatever is enabled (see below). Fails on the first
                   check that does not hold; a bugcheck instead reboots the VM into the dump.
    collect        Copies the kernel dumps and the logs into -Log's folder and prints the
                   debugger commands to run on them.
    reset          verifier /reset and the KMDF verifier values off; reboot afterwards.
  'run' does, logging everything to -Log:
    1. verifier /querysettings, for the record;
    2. -Cycles load/unload cycles (sc start, one info request, sc stop, STOPPED): each unload
       runs Verifier's unload-time leak checks;
    3. the scenario suite against the real driver (WSKUDP_TEST_IFACE = -TestInterface). A
       skipped scenario fails the run unless named in -AcceptedSkips (then it is logged as NOT
       CHECKED). Without -ExpectInjectedFailures any failure fails the run. With it (low-resources simulation: every call site fails once,
       the first time it is reached), a load that fails or a scenario pass whose every
       failure names the injected STATUS_INSUFFICIENT_RESOURCES (0xC000009A) is logged and
       not counted; any other failure still fails the run, and one load/unload cycle and one
       scenario pass (of up to -Passes) must be entirely green;
    4. a CLI killed in the middle of a long send (TerminateProcess): its handle's cleanup must
       cancel everything, after which the driver reports no request in flight, no socket open
       and no more pool in use than before the send;
    5. every handle closed, sc stop, and the service confirmed STOPPED.
  NOT RUN by this project: no Windows machine was available to it.
.PARAMETER Phase
  dumps | standard | low-resources | run | collect | reset
#>
param(
    [ValidateSet('dumps', 'standard', 'low-resources', 'run', 'collect', 'reset')]
    [string] $Phase = 'run',
    [string] $Folder,
    [string] $Log = (Join-Path $PWD "verifier-$((Get-Date).ToString('yyyyMMdd-HHmmss')).log"),
    [int] $Cycles = 20,
    [int] $Passes = 30,
    # A UDP port on this VM with nothing listening: the killed send's datagrams go there.
    [int] $SinkPort = 9,
    # Low-resources simulation is on: failures that name the injected status are expected.
    [switch] $ExpectInjectedFailures,
    # The VM's adapter for the link-local, IPv6 multicast and don't-fragment scenarios
    # (WSKUDP_TEST_IFACE: an alias or an interface index).
    [string] $TestInterface = 'Ethernet',
    # Scenarios whose skip this run accepts (by name, as `wskudpctl scenarios` prints them),
    # e.g. the hop-limit checks on a Server 2022 receiver. Any other skip fails the run.
    [string[]] $AcceptedSkips = @()
)

. (Join-Path $PSScriptRoot 'common.ps1')

function Write-Log([string] $Text) {
    $line = "$((Get-Date).ToString('s')) $Text"
    Write-Host $line
    Add-Content -LiteralPath $Log -Value $line
}

# Runs a native command, its output (stderr included) shown and logged: its exit code and its
# lines. Windows PowerShell 5.1 turns each stderr line of a redirected native command into an
# error record, which 'Stop' would make fatal: the exit code decides, so errors only continue
# in this scope.
function Invoke-Captured([string] $FilePath, [string[]] $ArgumentList) {
    $ErrorActionPreference = 'Continue'
    Write-Log "> $FilePath $($ArgumentList -join ' ')"
    $lines = @(& $FilePath @ArgumentList 2>&1 | ForEach-Object { "$_" })
    $code = $LASTEXITCODE
    # Add-Content, as Write-Log: one encoding in the log (5.1's Tee-Object writes UTF-16).
    $lines | Add-Content -LiteralPath $Log
    $lines | Out-Host
    return [pscustomobject]@{ Code = $code; Lines = $lines }
}

# A native command that must end with one of the -Success exit codes; returns the code.
function Invoke-Logged {
    param([string] $FilePath, [string[]] $ArgumentList, [int[]] $Success = @(0))
    $run = Invoke-Captured $FilePath $ArgumentList
    if ($Success -notcontains $run.Code) {
        throw "$FilePath $($ArgumentList -join ' ') failed with exit code $($run.Code) (see $Log)"
    }
    return $run.Code
}

# Exit codes verifier.exe gives for a change saved for the next boot. It documents none;
# the registry check after each change is what decides.
$VerifierSaved = @(0, 2)

function Assert-Verified {
    if (-not ((Get-VerifierTargets) -icontains $DriverImage)) {
        throw "Driver Verifier does not list $DriverImage (VerifyDrivers); the change failed."
    }
}

# An injected low-resources failure: STATUS_INSUFFICIENT_RESOURCES as the driver reports it
# (0xC000009A) or as sc.exe reports a load that failed with it (ERROR_NO_SYSTEM_RESOURCES).
$InjectedPattern = 'C000009A|exit code 1450\b'

# Runs `wskudpctl --backend device ARGS`, its output logged: its exit code, its text and its
# JSON ($null if it printed none).
function Invoke-Cli([string] $Cli, [string[]] $Arguments) {
    $env:WSKUDP_TEST_IFACE = $TestInterface
    $run = Invoke-Captured $Cli (@('--backend', 'device') + $Arguments)
    $json = $null
    try {
        $json = ($run.Lines | Where-Object { $_ -notmatch '^error:' }) -join "`n" | ConvertFrom-Json
    } catch {
        $json = $null
    }
    return [pscustomobject]@{ Code = $run.Code; Text = ($run.Lines -join "`n"); Json = $json }
}

# The driver's counters (wskudpctl stats --json).
function Get-DriverStats([string] $Cli) {
    $run = Invoke-Cli $Cli @('stats', '--json')
    if ($run.Code -ne 0 -or $null -eq $run.Json) { throw "wskudpctl stats failed with exit code $($run.Code)" }
    return $run.Json
}

switch ($Phase) {
    'dumps' {
        # A kernel memory dump (2) is enough for !analyze and !wdfkd.wdflogdump; reboot
        # automatically so a bugcheck under test comes back to a usable VM.
        $key = 'HKLM:\SYSTEM\CurrentControlSet\Control\CrashControl'
        Set-ItemProperty $key -Name CrashDumpEnabled -Value 2
        Set-ItemProperty $key -Name AutoReboot -Value 1
        Set-ItemProperty $key -Name Overwrite -Value 1
        Set-ItemProperty $key -Name DumpFile -Value '%SystemRoot%\MEMORY.DMP'
        Write-Log 'Kernel dumps on (needs a page file at least as large as RAM in use; see README).'
    }
    'standard' {
        Assert-WindowsFloor
        Stop-Driver
        # /standard is the standard rule classes, DDI compliance and WDF verification included
        # (the old '/flags 0x209BB' spelling of it leaves WDF verification out).
        Invoke-Logged verifier.exe @('/standard', '/driver', $DriverImage) -Success $VerifierSaved | Out-Null
        # Boot-loop protection: wskudp is demand-start, so a verifier bugcheck happens only
        # under test, never at boot; should a boot still fail, Windows drops the settings.
        Invoke-Logged verifier.exe @('/bootmode', 'resetonbootfail') -Success $VerifierSaved | Out-Null
        Assert-Verified
        Set-KmdfVerifier $true
        Invoke-Logged verifier.exe @('/querysettings') | Out-Null
        Write-Warning "Reboot, then: verifier.ps1 -Phase run"
        exit $ERROR_SUCCESS_REBOOT_REQUIRED
    }
    'low-resources' {
        Assert-WindowsFloor
        Stop-Driver
        if ((Get-WindowsBuild) -ge $DifModeBuild) {
            # '/dif <classes> /now' is valid only while no rule class is running (the
            # verifier command-line page): start from a reset VM.
            if ((Get-VerifierTargets).Count -ne 0) {
                throw 'Driver Verifier settings are active (VerifyDrivers is set): run ' +
                    'verifier.ps1 -Phase reset, reboot, then this phase again.'
            }
            # Rule class 19 (systematic low resources simulation) in DIF mode, applied now.
            Invoke-Logged verifier.exe @('/dif', '19', '/now', '/driver', $DriverImage) -Success $VerifierSaved | Out-Null
            Set-KmdfVerifier $true
            Write-Log 'Systematic low resources simulation is on: verifier.ps1 -Phase run -ExpectInjectedFailures'
        } else {
            # The Windows 10 spelling: the standard flags with 0x40000; KMDF's verifier
            # through its own registry values, which the flags do not turn on.
            Invoke-Logged verifier.exe @('/flags', '0x609BB', '/driver', $DriverImage) -Success $VerifierSaved | Out-Null
            Invoke-Logged verifier.exe @('/bootmode', 'resetonbootfail') -Success $VerifierSaved | Out-Null
            Assert-Verified
            Set-KmdfVerifier $true
            Write-Warning "Reboot, then: verifier.ps1 -Phase run -ExpectInjectedFailures"
            exit $ERROR_SUCCESS_REBOOT_REQUIRED
        }
    }
    'run' {
        Assert-WindowsFloor
        $Folder = Resolve-VmFolder $Folder
        $cli = Join-Path $Folder 'wskudpctl.exe'
        Invoke-Logged verifier.exe @('/querysettings') | Out-Null

        Write-Log "Load/unload x$Cycles"
        $greenCycles = 0
        for ($i = 1; $i -le $Cycles; $i++) {
            try {
                Start-Driver
                $info = Invoke-Cli $cli @('info', '--json')
                if ($info.Code -ne 0) { throw "wskudpctl info failed (exit $($info.Code)): $($info.Text)" }
                $greenCycles++
            } catch {
                if (-not ($ExpectInjectedFailures -and "$_" -match $InjectedPattern)) { throw }
                Write-Log "Cycle ${i}: $_ (the injected status: not counted)"
            }
            Stop-Driver
        }
        if ($greenCycles -eq 0) { throw "No load/unload cycle of $Cycles was green (see $Log)" }

        $green = $false
        for ($pass = 1; $pass -le $Passes -and -not $green; $pass++) {
            Write-Log "Scenario pass $pass"
            try { Start-Driver } catch {
                if (-not ($ExpectInjectedFailures -and "$_" -match $InjectedPattern)) { throw }
                Write-Log "Load failed: $_ (the injected status: not counted)"
                Stop-Driver
                continue
            }
            # Skips are judged here, against -AcceptedSkips, not by the CLI.
            $run = Invoke-Cli $cli @('scenarios', '--json', '--allow-skips')
            $results = @()
            if ($null -ne $run.Json -and $null -ne $run.Json.PSObject.Properties['scenarios']) {
                $results = @($run.Json.scenarios)
            }
            $failed = @($results | Where-Object { $_.result -eq 'fail' })
            $unaccepted = @($results | Where-Object { $_.result -eq 'skip' -and $AcceptedSkips -notcontains $_.name })
            foreach ($skip in @($results | Where-Object { $_.result -eq 'skip' -and $AcceptedSkips -contains $_.name })) {
                Write-Log "NOT CHECKED (accepted skip): $($skip.name): $($skip.detail)"
            }
            if ($run.Code -eq 0 -and $results.Count -gt 0 -and $failed.Count -eq 0 -and $unaccepted.Count -eq 0) {
                $green = $true
                continue
            }
            # Not green. Under low-resources simulation, a pass whose every failure names the
            # injected status (or that could not start for it) is not counted; nothing else is.
            $notInjected = @($failed | Where-Object { "$($_.detail)" -notmatch $InjectedPattern })
            $injectedOnly = $unaccepted.Count -eq 0 -and $notInjected.Count -eq 0 -and
                ($failed.Count -gt 0 -or ($results.Count -eq 0 -and $run.Text -match $InjectedPattern))
            if (-not ($ExpectInjectedFailures -and $injectedOnly)) {
                $why = @($failed + $unaccepted | ForEach-Object { "$($_.name) ($($_.result)): $($_.detail)" })
                throw "Scenario pass $pass failed (exit $($run.Code)): $($why -join '; ') (see $Log)"
            }
            Write-Log "Pass ${pass}: $($failed.Count) scenario(s) failed with the injected status: not counted"
        }
        if (-not $green) { throw "No green scenario pass in $Passes (see $Log)" }

        $before = Get-DriverStats $cli
                Write-Log 'Killing a CLI in the middle of a send'
        $sender = Start-Process -FilePath $cli -PassThru -NoNewWindow -ArgumentList @(
            '--backend', 'device', 'send', '--to', "127.0.0.1:$SinkPort", '--size', '1200',
            '--count', '100000000', '--inflight', '64')
        Start-Sleep -Seconds 3
        if ($sender.HasExited) { throw "The long send ended by itself (exit $($sender.ExitCode)); it was meant to be killed" }
        Stop-Process -Id $sender.Id -Force
        $sender.WaitForExit()
        $deadline = (Get-Date).AddSeconds(30)
        do {
            Start-Sleep -Milliseconds 500
            $stats = Get-DriverStats $cli
            $settled = $stats.driver.requests_in_flight -eq 0 -and $stats.open_sockets -eq 0 -and
                $stats.pool_bytes -le $before.pool_bytes
        } while (-not $settled -and (Get-Date) -lt $deadline)
        Write-Log ("After the kill: $($stats.driver.requests_in_flight) requests and " +
            "$($stats.driver.datagrams_in_flight) datagrams in flight, $($stats.open_sockets) " +
            "socket(s) open, $($stats.pool_bytes) pool bytes (before the send: $($before.pool_bytes))")
        if (-not $settled -or $stats.driver.datagrams_in_flight -ne 0) {
            throw 'The killed CLI left requests, sockets or pool behind: its handle cleanup did not release them.'
        }

        # Every handle is closed now; the unload runs Verifier's leak checks.
        Stop-Driver
        Invoke-Logged verifier.exe @('/query') | Out-Null
        if ((Get-WindowsBuild) -ge $DifModeBuild) {
            Invoke-Logged verifier.exe @('/faultssystematic', 'querystatistics') -Success $VerifierSaved | Out-Null
        }
        Write-Log "Run passed: no bugcheck, a green pass, clean kill, STOPPED. Log: $Log"
    }
    'collect' {
        $out = Split-Path -Parent $Log
        $copied = @()
        foreach ($dump in @("$env:SystemRoot\MEMORY.DMP") + @(Get-ChildItem "$env:SystemRoot\Minidump\*.dmp" -ErrorAction SilentlyContinue | ForEach-Object FullName)) {
            if (Test-Path -LiteralPath $dump) {
                Copy-Item -LiteralPath $dump -Destination $out -Force
                $copied += (Join-Path $out (Split-Path -Leaf $dump))
            }
        }
        if ($copied.Count -eq 0) { Write-Log 'No kernel dump found: nothing bugchecked.'; exit 0 }
        $symbols = Join-Path (Resolve-VmFolder $Folder) 'wskudp_package'
        foreach ($dump in $copied) {
            Write-Log "Dump: $dump. Analyse it with (WinDbg or kd from the Debugging Tools):"
            Write-Log "  kd -z `"$dump`" -y `"srv*;$symbols`" -c `"!analyze -v; !verifier 3; !wdfkd.wdflogdump wskudp; !verifier 0x800; q`""
        }
    }
    'reset' {
        Invoke-Logged verifier.exe @('/reset') -Success $VerifierSaved | Out-Null
        Set-KmdfVerifier $false
        Write-Warning 'Reboot to leave Driver Verifier.'
        exit $ERROR_SUCCESS_REBOOT_REQUIRED
    }
}
exit 0
