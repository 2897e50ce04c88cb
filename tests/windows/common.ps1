<#
.SYNOPSIS
  Shared by install.ps1, uninstall.ps1 and verifier.ps1 (dot-sourced). Not run on its own.
.DESCRIPTION
  Every native command goes through Invoke-Native, which checks its exit code against the
  codes that mean success for that command. State is read from objects (CIM, the registry,
  DISM's cmdlets), never from a tool's English output.
  NOT RUN by this project: no Windows machine was available to it.
#>

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

# The oldest Windows build wskudp runs on: KMDF 1.33 (Windows 11 21H2 is 22000, Server 2022
# 20348). Kept equal to driver/sys/Cargo.toml's windows-build-floor by
# tests/harness/tests/version_floor.rs.
$WindowsBuildFloor = 20348
# The first build whose Driver Verifier takes rule classes with DIF mode (/rc 19 36): Windows 11.
$DifModeBuild = 22000

$ServiceName = 'wskudp'
$DriverImage = 'wskudp.sys'
$InfName = 'wskudp.inf'

# Exit codes with a meaning of their own.
$ERROR_SUCCESS_REBOOT_REQUIRED = 3010   # pnputil: done, a reboot finishes it
$ERROR_SERVICE_ALREADY_RUNNING = 1056   # sc.exe start
$ERROR_SERVICE_DOES_NOT_EXIST = 1060    # sc.exe start/stop
$ERROR_SERVICE_NOT_ACTIVE = 1062        # sc.exe stop

# Runs a native command; throws unless its exit code is one of -Success. Returns the code.
function Invoke-Native {
    param(
        [Parameter(Mandatory)] [string] $FilePath,
        [string[]] $ArgumentList = @(),
        [int[]] $Success = @(0)
    )
    Write-Host "> $FilePath $($ArgumentList -join ' ')"
    & $FilePath @ArgumentList | Out-Host
    $code = $LASTEXITCODE
    if ($Success -notcontains $code) {
        throw "$FilePath $($ArgumentList -join ' ') failed with exit code $code"
    }
    return $code
}

function Get-WindowsBuild {
    [int](Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion').CurrentBuildNumber
}

function Assert-WindowsFloor {
    $build = Get-WindowsBuild
    if ($build -lt $WindowsBuildFloor) {
        throw "This is Windows build $build; wskudp needs build $WindowsBuildFloor or later " +
            "(KMDF 1.33: Windows Server 2022 or Windows 11). See README 'Version floor'."
    }
}

# The wskudp kernel service as CIM sees it (State: 'Running', 'Stopped', ...), or $null.
function Get-DriverService {
    Get-CimInstance -ClassName Win32_SystemDriver -Filter "Name='$ServiceName'"
}

function Wait-DriverState {
    param([Parameter(Mandatory)] [string] $State, [int] $TimeoutSeconds = 60)
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    while ($true) {
        $service = Get-DriverService
        if ($null -ne $service -and $service.State -eq $State) { return }
        if ((Get-Date) -gt $deadline) {
            $now = if ($null -eq $service) { 'not installed' } else { $service.State }
            throw "The $ServiceName service is '$now', not '$State', after $TimeoutSeconds s"
        }
        Start-Sleep -Milliseconds 250
    }
}

function Start-Driver {
    Invoke-Native sc.exe @('start', $ServiceName) -Success @(0, $ERROR_SERVICE_ALREADY_RUNNING) | Out-Null
    Wait-DriverState 'Running'
}

# sc stop, then wait for Stopped: the unload (and Driver Verifier's unload-time leak checks)
# happens only once every handle is closed, so a stop that never completes names an open
# handle or a stuck unload.
function Stop-Driver {
    param([int] $TimeoutSeconds = 60)
    if ($null -eq (Get-DriverService)) { return }
    Invoke-Native sc.exe @('stop', $ServiceName) -Success @(0, $ERROR_SERVICE_NOT_ACTIVE) | Out-Null
    try {
        Wait-DriverState 'Stopped' -TimeoutSeconds $TimeoutSeconds
    } catch {
        throw "$_. A handle to \\.\WskUdp is still open (close every wskudpctl), or the " +
            "driver's unload is stuck: take a kernel dump (verifier.ps1 -Phase dumps)."
    }
}

# The driver store packages of wskudp (objects with .Driver = 'oemNN.inf').
function Get-DriverPackages {
    Get-WindowsDriver -Online -All |
        Where-Object { [IO.Path]::GetFileName($_.OriginalFileName) -ieq $InfName }
}

# The Driver Verifier settings that survive a reboot, from the registry verifier.exe writes.
function Get-VerifierTargets {
    $key = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management'
    $value = (Get-ItemProperty $key -Name VerifyDrivers -ErrorAction SilentlyContinue).VerifyDrivers
    if ($null -eq $value) { return @() }
    return @($value -split '\s+' | Where-Object { $_ })
}

# The folder holding wskudp_package\, wskudpctl.exe and these scripts (cargo make's
# target\<target>\<profile>\wskudp-vm), given or found beside this script.
function Resolve-VmFolder {
    param([string] $Folder)
    if (-not $Folder) { $Folder = $PSScriptRoot }
    $inf = Join-Path $Folder "wskudp_package\$InfName"
    $cli = Join-Path $Folder 'wskudpctl.exe'
    foreach ($needed in @($inf, $cli)) {
        if (-not (Test-Path -LiteralPath $needed)) {
            throw "$needed is missing. Run the scripts from the folder 'cargo make' builds " +
                "(target\<target>\<profile>\wskudp-vm, copied to the VM), or pass -Folder."
        }
    }
    return (Resolve-Path -LiteralPath $Folder).Path
}

# KMDF's own verifier for the service (its Parameters\Wdf values), on or removed.
function Set-KmdfVerifier([bool] $On) {
    $key = "HKLM:\SYSTEM\CurrentControlSet\Services\$ServiceName\Parameters\Wdf"
    if ($On) {
        New-Item -Path $key -Force | Out-Null
        # KMDF's own verifier, with every object's references tracked for !wdfkd.wdfhandle.
        New-ItemProperty -Path $key -Name VerifierOn -PropertyType DWord -Value 1 -Force | Out-Null
        New-ItemProperty -Path $key -Name TrackHandles -PropertyType MultiString -Value @('*') -Force | Out-Null
    } elseif (Test-Path $key) {
        Remove-ItemProperty -Path $key -Name VerifierOn, TrackHandles -ErrorAction SilentlyContinue
    }
}
